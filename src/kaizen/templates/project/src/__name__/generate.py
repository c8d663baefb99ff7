"""The __name__ world: daily raw drops of a subscription app's accounts and events.

A small structural model, stepped one day at a time:

* every account has a latent engagement that sets how often they open the app and how much
  they do; paid plans are more active and buy more;
* each day an engaged account may start fading: the chance rises for low engagement, the free
  plan and the first 30 days; a fading account is ever less active, with fewer and shorter
  sessions, and is gone for good `fade_days` later, so recent events reveal who is leaving;
* the shock (`shift_date`) changes the relation: android accounts start fading several times
  as often, which no pre-shock model has seen.

Every draw comes from a generator seeded by (seed, day) and the number of draws never
depends on the shock, so the same arguments give the same bytes and the days before a shock
equal a run without one. Faults only corrupt the written file, never the world.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pandas as pd

from __name__.clock import DAY_US, day_start, micros, parse_ds
from __name__.params import ProjectParams, SimulateParams
from kaizen.errors import InputError

SOURCES = ("accounts", "events")
FAULT_KINDS = ("null_key", "missing_column", "duplicate_rows", "empty_file")
DROPPED_COLUMN = {"accounts": "plan", "events": "duration_s"}  # what "missing_column" drops
US_PER_S = 1_000_000

COUNTRIES = np.array(["us", "gb", "de", "fr", "in", "br"])
COUNTRY_P = [0.30, 0.15, 0.15, 0.12, 0.16, 0.12]
PLANS = np.array(["free", "basic", "pro"])
PLAN_P = [0.60, 0.28, 0.12]
DEVICES = np.array(["ios", "android", "web"])
DEVICE_P = [0.40, 0.40, 0.20]
ANDROID = 1
KINDS = np.array(["open", "view", "share", "purchase"])
KIND_CUMULATIVE = np.cumsum(  # per plan: paid plans buy more
    [[0.45, 0.43, 0.06, 0.06], [0.42, 0.40, 0.06, 0.12], [0.38, 0.36, 0.06, 0.20]], axis=1
)
# Logit effects. Activity: P(at least one event today); __name__: P(start fading today).
ACTIVITY_BASE = -0.2
ACTIVITY_ENGAGEMENT = 1.2
ACTIVITY_PLAN = np.array([-0.3, 0.1, 0.5])
QUIT_ENGAGEMENT = -1.2
QUIT_PLAN = np.array([0.5, 0.0, -0.7])
QUIT_NEW_USER = 0.7  # within NEW_USER_DAYS of signing up
NEW_USER_DAYS = 30
FADE_DECAY = 0.85  # a fading account's activity chance shrinks by this factor each day
BASE_AGE_DAYS = 400  # the first day's accounts signed up within this many days before it


@dataclass(frozen=True)
class Fault:
    ds: str
    source: str
    kind: str

    @classmethod
    def of(cls, value: Fault | tuple[str, str, str] | str) -> Fault:
        """A fault from a (ds, source, kind) tuple or "ds:source:kind"; ValueError if invalid."""
        if isinstance(value, Fault):
            return value
        parts = value.split(":") if isinstance(value, str) else list(value)
        if len(parts) != 3:
            raise ValueError(f"invalid fault {value!r}: expected (ds, source, kind)")
        ds, source, kind = parts
        if source not in SOURCES:
            raise ValueError(f"invalid fault {value!r}: source must be one of {SOURCES}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"invalid fault {value!r}: kind must be one of {FAULT_KINDS}")
        return cls(parse_ds(ds), source, kind)


@dataclass
class GenerateReport:
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    faults: list[Fault] = field(default_factory=list)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _iso(us: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(us.astype("datetime64[us]"), unit="s"), "Z")


def _account_ids(uid: np.ndarray) -> np.ndarray:
    if uid.size == 0:  # a quiet day: no account changed, none joined
        return np.zeros(0, dtype="<U7")
    return np.char.add("a", np.char.zfill(uid.astype(str), 6))


class World:
    """The simulated app; `step(day)` advances one day and returns that day's two drops."""

    def __init__(self, p: SimulateParams, start: str, shift_date: str | None = None) -> None:
        self.p = p
        self.start_us = micros(day_start(start))
        self.shift_us = None if shift_date is None else micros(day_start(shift_date))
        self.uid = np.zeros(0, dtype=np.int64)
        self.signup_us = np.zeros(0, dtype=np.int64)
        self.country = np.zeros(0, dtype=np.int64)
        self.plan = np.zeros(0, dtype=np.int64)
        self.device = np.zeros(0, dtype=np.int64)
        self.engagement = np.zeros(0)
        self.fade = np.zeros(0, dtype=np.int64)  # -1 engaged, else days since fading began
        self.gone = np.zeros(0, dtype=bool)
        self.next_event_id = 1
        rng = np.random.default_rng([p.seed, 1])
        ago = rng.integers(1, BASE_AGE_DAYS * 86_400, p.accounts) * US_PER_S
        self._join(rng, np.sort(self.start_us - ago))

    def _join(self, rng: np.random.Generator, signup_us: np.ndarray) -> np.ndarray:
        """Add accounts who signed up at `signup_us`; returns their positions."""
        n = signup_us.size
        first = self.uid.size
        self.uid = np.concatenate([self.uid, np.arange(first + 1, first + n + 1)])
        self.signup_us = np.concatenate([self.signup_us, signup_us])
        self.country = np.concatenate([self.country, rng.choice(6, n, p=COUNTRY_P)])
        self.plan = np.concatenate([self.plan, rng.choice(3, n, p=PLAN_P)])
        self.device = np.concatenate([self.device, rng.choice(3, n, p=DEVICE_P)])
        self.engagement = np.concatenate([self.engagement, rng.lognormal(0.0, 0.6, n)])
        self.fade = np.concatenate([self.fade, np.full(n, -1)])
        self.gone = np.concatenate([self.gone, np.zeros(n, dtype=bool)])
        return np.arange(first, first + n)

    def step(self, day: int) -> dict[str, pd.DataFrame]:
        p = self.p
        rng = np.random.default_rng([p.seed, 0, day])
        d0 = self.start_us + day * DAY_US
        d1 = d0 + DAY_US
        shocked = self.shift_us is not None and d0 >= self.shift_us

        # Plan and device changes of existing accounts, then today's signups.
        n = self.uid.size
        draws = rng.random((4, n))
        new_plan = (draws[1] * 3).astype(np.int64)
        new_device = (draws[3] * 3).astype(np.int64)
        plan_moves = ~self.gone & (draws[0] < p.plan_change_rate) & (new_plan != self.plan)
        device_moves = ~self.gone & (draws[2] < p.device_change_rate) & (new_device != self.device)
        self.plan = np.where(plan_moves, new_plan, self.plan)
        self.device = np.where(device_moves, new_device, self.device)
        changed_at = d0 + rng.integers(0, 86_400, n) * US_PER_S
        changed = np.flatnonzero(plan_moves | device_moves)
        if day == 0:  # the first export holds every account
            changed = np.arange(n)
        k = int(rng.poisson(p.signups_per_day))
        joined = self._join(rng, np.sort(d0 + rng.integers(0, 86_400, k) * US_PER_S))
        accounts = self._accounts_frame(
            np.concatenate([changed, joined]),
            np.concatenate([changed_at[changed], self.signup_us[joined]]),
        )

        # Activity: who opens the app today, how often, doing what.
        n = self.uid.size
        e = self.engagement
        logit = ACTIVITY_BASE + ACTIVITY_ENGAGEMENT * np.log(e) + ACTIVITY_PLAN[self.plan]
        fading = np.where(self.fade >= 0, FADE_DECAY ** (self.fade + 1.0), 1.0)
        active = ~self.gone & (rng.random(n) < _sigmoid(logit) * fading)
        extra = rng.poisson((p.events_per_account_day - 1.0) * np.sqrt(e) * fading)
        counts = np.where(active, 1 + extra, 0)
        events = self._events_frame(rng, counts, fading, d0, d1)

        # Tonight's __name__: some engaged accounts start fading; faded-out accounts are gone.
        age_days = (d1 - self.signup_us) // DAY_US
        hazard = (
            np.log(p.quit_rate / (1 - p.quit_rate))
            + QUIT_ENGAGEMENT * np.log(e)
            + QUIT_PLAN[self.plan]
            + QUIT_NEW_USER * (age_days < NEW_USER_DAYS)
            + (np.log(p.shock_android_quit) * (self.device == ANDROID) if shocked else 0.0)
        )
        starts = ~self.gone & (self.fade < 0) & (rng.random(n) < _sigmoid(hazard))
        self.fade = np.where(self.fade >= 0, self.fade + 1, np.where(starts, 0, -1))
        self.gone |= self.fade >= p.fade_days
        return {"accounts": accounts, "events": events}

    def _accounts_frame(self, idx: np.ndarray, updated_us: np.ndarray) -> pd.DataFrame:
        order = np.lexsort((self.uid[idx], updated_us))
        idx, updated_us = idx[order], updated_us[order]
        return pd.DataFrame(
            {
                "account_id": _account_ids(self.uid[idx]),
                "signup_ts": _iso(self.signup_us[idx]),
                "country": COUNTRIES[self.country[idx]],
                "plan": PLANS[self.plan[idx]],
                "device": DEVICES[self.device[idx]],
                "updated_at": _iso(updated_us),
            }
        )

    def _events_frame(
        self, rng: np.random.Generator, counts: np.ndarray, fading: np.ndarray, d0: int, d1: int
    ) -> pd.DataFrame:
        owner = np.repeat(np.arange(counts.size), counts)
        total = owner.size
        lo = np.maximum(d0, self.signup_us[owner])  # a new account's events follow the signup
        seconds = (d1 - lo) // US_PER_S
        ts = lo + (rng.random(total) * seconds).astype(np.int64) * US_PER_S
        kind = (rng.random(total)[:, None] > KIND_CUMULATIVE[self.plan[owner]]).sum(axis=1)
        # Sessions shorten as an account fades.
        mean_log = np.log(35.0) + 0.3 * np.log(self.engagement[owner]) + np.log(fading[owner])
        duration = np.maximum(0.1, np.round(rng.lognormal(mean_log, 0.7), 1))
        order = np.lexsort((self.uid[owner], ts))
        owner, ts, kind, duration = owner[order], ts[order], kind[order], duration[order]
        ids = np.arange(self.next_event_id, self.next_event_id + total)
        self.next_event_id += total
        return pd.DataFrame(
            {
                "event_id": ids,
                "account_id": _account_ids(self.uid[owner]),
                "event_ts": _iso(ts),
                "kind": KINDS[np.minimum(kind, KINDS.size - 1)],
                "duration_s": duration,
            }
        )


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()


def corrupt(frame: pd.DataFrame, source: str, kind: str, rng: np.random.Generator) -> pd.DataFrame:
    """`frame` with one fault of `kind` (not "empty_file": that one has no rows to corrupt)."""
    frame = frame.reset_index(drop=True)
    n = len(frame)
    if kind == "null_key":
        rows = rng.choice(n, size=min(n, max(1, n // 10)), replace=False)
        frame["account_id"] = frame["account_id"].astype(object)
        frame.loc[rows, "account_id"] = ""  # an empty field: missing once parsed
    elif kind == "missing_column":
        frame = frame.drop(columns=[DROPPED_COLUMN[source]])
    elif kind == "duplicate_rows":
        rows = np.sort(rng.choice(n, size=min(n, max(1, n // 20)), replace=False))
        frame = pd.concat([frame, frame.iloc[rows]]).sort_index(kind="stable")
    return frame


def _write(url: str, blob: bytes, storage_options: dict, *, overwrite: bool) -> None:
    """Land one raw file. Raw files are immutable: a different existing file is an error
    unless `overwrite` (a corrected drop re-landed on purpose)."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    if not overwrite and fs.exists(path) and fs.cat_file(path) != blob:
        raise InputError(
            f"{url} already exists with different content; raw files are immutable "
            "(`--overwrite` re-lands a corrected drop)"
        )
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fsspec.open(url, "wb", **storage_options) as fh:
        fh.write(blob)


def generate(
    params: ProjectParams | SimulateParams,
    raw_root: str,
    *,
    start: str | dt.date | None = None,
    days: int | None = None,
    shift_date: str | dt.date | None = None,
    faults: Iterable[Fault | tuple[str, str, str] | str] = (),
    storage_options: dict | None = None,
    overwrite: bool = False,
    **overrides: object,
) -> GenerateReport:
    """Write `days` daily drops from `start` to `raw_root/<source>/<ds>.csv`.

    The generator hook (kaizen.yaml `generator`): `project.simulate` with `overrides`, any of
    its keys (accounts, seed, ...); `start` and `days` default to its own."""
    p = params.simulate if isinstance(params, ProjectParams) else params
    if overrides:
        p = SimulateParams.model_validate({**p.model_dump(), **overrides})
    start = parse_ds(p.start if start is None else start)
    days = p.days if days is None else days
    shift = None if shift_date is None else parse_ds(shift_date)
    dates = [(dt.date.fromisoformat(start) + dt.timedelta(days=i)).isoformat() for i in range(days)]
    faults = [Fault.of(f) for f in faults]
    for fault in faults:
        if fault.ds not in dates:
            raise ValueError(f"fault date {fault.ds} is outside the generated days")
    root = raw_root.rstrip("/")
    options = storage_options or {}
    world = World(p, start, shift)
    report = GenerateReport(faults=faults)
    for day, ds in enumerate(dates):
        frames = world.step(day)
        for s_index, source in enumerate(SOURCES):
            frame = frames[source]
            kinds = [f.kind for f in faults if (f.ds, f.source) == (ds, source)]
            rng = np.random.default_rng([p.seed, 2, day, s_index])
            for kind in kinds:
                if kind != "empty_file":
                    frame = corrupt(frame, source, kind, rng)
            empty = "empty_file" in kinds
            url = f"{root}/{source}/{ds}.csv"
            _write(url, b"" if empty else to_csv_bytes(frame), options, overwrite=overwrite)
            report.files.append(url)
            report.rows[source] += 0 if empty else len(frame)
    return report
