"""The yardstick: a model retrained every day on hindsight labels, scored like the champion.

The oracle knows every row's outcome the moment it is asked (the truth labels), so it
pays no label lag and no gate: the distance between it and the served champion is what the
loop's caution costs. It sees the same published features through the same point-in-time
join as training, and is the same pipeline with the same `train` params.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from kaizen.labels import EVENT_TIMESTAMP, LABEL_TIMES
from kaizen.logs import get_logger
from kaizen.model.data import Inputs, model_inputs
from kaizen.params import Params
from kaizen.runtime import Runtime
from kaizen.scoreboard.scenario import ROW_ID
from kaizen.transforms.contract import as_of

log = get_logger(__name__)
LABEL = "label"


def features_at_issue(rt: Runtime, truth: pd.DataFrame, last_ds: str) -> pd.DataFrame:
    """Every labelled row by the end of `last_ds` with its features as served then."""
    from kaizen.featurestore.store import open_store
    from kaizen.stages.training_set import published_days

    first = as_of(published_days(rt)[0])
    entity = truth[(truth[EVENT_TIMESTAMP] >= first) & (truth[EVENT_TIMESTAMP] < as_of(last_ds))]
    entity = entity.drop(columns=LABEL_TIMES)
    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.training_set.feature_service)
    joined = store.get_historical_features(entity_df=entity, features=service).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    joined[ROW_ID] = joined[ROW_ID].astype(str)
    return joined.sort_values([EVENT_TIMESTAMP, ROW_ID], kind="stable").reset_index(drop=True)


def _fit_and_score(past: pd.DataFrame, test: pd.DataFrame, inputs: Inputs, params: Params):
    """One oracle: fitted on `past`, the scores of `test` (one thread: fits run side by side)."""
    from kaizen.model.pipeline import build, calibration_split

    cv = calibration_split(past, inputs, params.train.calibration_folds)
    with threadpool_limits(limits=1):
        model = build(inputs, params.train, params.train.monotone_increasing, cv)
        model.fit(past[inputs.all], past[LABEL])
        return model.predict_proba(test[inputs.all])[:, 1]


def oracle_scores(
    rt: Runtime, frame: pd.DataFrame, days: list[str], every: int, jobs: int, progress=print
) -> pd.DataFrame:
    """row_id -> the oracle's score: for each block of `every` days, a model fitted on
    every row before the block's first day, scoring the rows of the block.

    The blocks are independent, so `jobs` processes fit them side by side; each fit is
    deterministic, so the scores do not depend on how many. Each worker gets only its slices."""
    from joblib import Parallel, delayed

    p = rt.params
    keys = [ROW_ID, *rt.project.join_keys, EVENT_TIMESTAMP]
    inputs = model_inputs(frame, keys)
    blocks: list[tuple[str, int, np.ndarray]] = []  # per fit: first day, rows fitted, ids scored

    def fits():  # lazy: joblib slices a block only when a worker is free for it
        for i in range(0, len(days), every):
            block = days[i : i + every]
            start = as_of(block[0]) - pd.Timedelta(days=1)  # 00:00 of the block's first day
            end = as_of(block[-1])
            lookback = start - pd.Timedelta(days=p.training_set.lookback_days)
            past = frame[(frame[EVENT_TIMESTAMP] < start) & (frame[EVENT_TIMESTAMP] >= lookback)]
            test = frame[(frame[EVENT_TIMESTAMP] >= start) & (frame[EVENT_TIMESTAMP] < end)]
            if not test.empty:
                blocks.append((block[0], len(past), test[ROW_ID].to_numpy()))
                yield delayed(_fit_and_score)(past, test, inputs, p)

    out = []
    # Results come in dispatch order, and a block is recorded before it is dispatched.
    for i, scores in enumerate(Parallel(n_jobs=jobs, return_as="generator")(fits())):
        first, fitted_on, ids = blocks[i]
        out.append(pd.DataFrame({ROW_ID: ids, "oracle": scores}))
        progress(f"oracle {first}: fitted on {fitted_on} rows, scored {len(ids)}")
    if not out:
        return pd.DataFrame({ROW_ID: pd.Series(dtype=str), "oracle": pd.Series(dtype=float)})
    return pd.concat(out, ignore_index=True)
