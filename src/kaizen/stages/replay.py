"""`replay`: re-validate a quarantined batch after a fix and publish it to silver.

Two fixes are possible and both are handled:
* a corrected raw file was landed again: its checksum differs from the quarantined one, so
  the batch is re-ingested from the raw drop;
* a suite or rule changed in review: the quarantined rows go back to bronze unchanged and
  are validated under the current suite.
Replaying is idempotent: a batch already in silver and not in quarantine is left alone.
"""

from __future__ import annotations

from kaizen.errors import InputError
from kaizen.interval import parse_ds
from kaizen.lake import Partition, lineage
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.ingest import FILE_CHECKS, ingest, raw_sha256
from kaizen.stages.result import StageResult, timed
from kaizen.stages.validate import validate

log = get_logger(__name__)


def replay(
    source: str, ds: str, rt: Runtime | None = None, engine: str | None = None
) -> StageResult:
    rt = rt or Runtime()
    ds = parse_ds(ds)
    result = StageResult("replay", f"{source} {ds}")
    with timed(result, log, rt):
        spec = rt.catalog.get(source)
        held = Partition("quarantine", spec.name, ds)
        manifest = rt.lake.manifest(held)
        if manifest is None:
            if rt.lake.exists(Partition("silver", spec.name, ds)):
                log.info(
                    "replay %s %s: nothing in quarantine, silver already published", source, ds
                )
                result.status = "skipped"
                result.output = rt.lake.url(Partition("silver", spec.name, ds))
                return result
            raise InputError(
                f"nothing to replay for {source} {ds}: no quarantined batch and no silver partition"
            )
        url = rt.raw_url(spec.name, ds)
        raw_sum = raw_sha256(url, rt.settings.storage_options(url))
        at_intake = manifest.get("validation", {}).get("suite") == FILE_CHECKS
        changed = raw_sum is not None and raw_sum != manifest.get("source_sha256")
        # A batch refused at intake can also be fixed by its declaration (an encoding, an
        # empty day allowed, a larger cap): then the unchanged raw drop is read again.
        redeclared = at_intake and manifest.get("intake_hash") != spec.intake_hash()
        if changed or (redeclared and raw_sum is not None):
            log.info(
                "replay %s %s: the %s changed since it was quarantined; re-ingesting",
                source,
                ds,
                "raw drop" if changed else "source's declaration",
            )
            ingest(spec.name, ds, rt)
        else:
            if at_intake:
                why = manifest.get("reason") or "it could not be read"
                raise InputError(
                    f"{source} {ds} was refused at intake ({why}) and neither its raw file nor"
                    " its declaration changed: land a corrected file first (or fix the declaration)"
                )
            log.info(
                "replay %s %s: re-validating the quarantined rows under the current suite",
                source,
                ds,
            )
            meta = lineage(manifest, drop=("validation", "rows_landed"))
            rt.lake.write(Partition("bronze", spec.name, ds), rt.lake.read_table(held), meta=meta)
        checked = validate(spec.name, ds, rt, engine=engine)
        for name in ("status", "rows_in", "rows_out", "rows_quarantined", "output", "details"):
            setattr(result, name, getattr(checked, name))
    return result
