"""`params.yaml` as a typed model: behaviour only (windows, rates, thresholds, hyperparameters).

DVC tracks the file, so every value that changes a result lives here and nowhere else.
Every key is required and unknown keys are refused: a typo is an error naming the key,
never a silently ignored default.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kaizen.errors import ConfigError, InputError

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
# Why a model version was trained (recorded on it as `kaizen.trigger`): the monitor's retrain
# request (a drift or business-signal breach), the weekly schedule, enough new labels, or a
# person (`dvc repro` / `make repro` by hand).
Trigger = Literal["retrain_request", "schedule", "new_labels", "manual"]
TRIGGERS: tuple[str, ...] = Trigger.__args__  # type: ignore[attr-defined]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestParams(_Section):
    """How raw drops are parsed."""

    csv_block_size_mb: Annotated[int, Field(ge=1, le=1024)]


Days = Annotated[int, Field(ge=1, le=3650)]


class FeatureStoreParams(_Section):
    """Feast behaviour: how old a served value may be, and how materialization moves."""

    ttl_days: dict[str, Annotated[int, Field(ge=1, le=3650)]]
    materialize_overlap_days: Annotated[int, Field(ge=0, le=60)]
    materialize_chunk_rows: Annotated[int, Field(ge=100)]


class TrainingSetParams(_Section):
    cutoff: Literal["latest"] | dt.date
    lookback_days: Annotated[int, Field(ge=1, le=3650)]
    # The Feast feature service the model is trained (and then served) with.
    feature_service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*_v[0-9]+$")]


class TrainParams(_Section):
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    max_iter: Annotated[int, Field(ge=1, le=5000)]
    max_leaf_nodes: Annotated[int, Field(ge=2, le=1024)]
    min_samples_leaf: Annotated[int, Field(ge=1)]
    l2_regularization: Annotated[float, Field(ge=0)]
    class_weight: Literal["balanced"] | None
    calibration: Literal["sigmoid", "isotonic"]
    calibration_folds: Annotated[int, Field(ge=2, le=10)]
    random_state: int
    min_rows: Annotated[int, Field(ge=10)]
    min_positives: Annotated[int, Field(ge=2)]
    retrain_min_new_labels: Annotated[int, Field(ge=0)]
    holdout_days: Annotated[int, Field(ge=1, le=365)]  # the latest days, never trained on
    monotone_increasing: list[str]  # inputs the score may only rise with (also gated)
    threads: Annotated[int, Field(ge=1, le=256)] = 1  # OpenMP threads of the fit
    # final: train on rows whose label is final by the cut-off; censored: also on the rows
    # still unresolved then, with a soft label from how long each waited (kaizen.model.hazard).
    labels: Literal["final", "censored"] = "final"
    delay_buckets: Annotated[int, Field(ge=2, le=100)] = 11  # censored: the delay buckets
    censored_rounds: Annotated[int, Field(ge=1, le=20)] = 5  # censored: EM rounds (one fit each)


class CensoredParams(_Section):
    """The censoring-aware holdout metrics (kaizen.model.censored): which rows, when to refuse."""

    min_elapsed_days: Annotated[float, Field(ge=0.0, le=3650.0)]  # younger rows: not estimated
    min_resolved_share: Annotated[float, Field(gt=0.0, le=1.0)]  # positivity floor of G
    min_class_rows: Annotated[int, Field(ge=1)]  # per class and bucket, else refuse
    score_buckets: Annotated[int, Field(ge=1, le=20)]  # censoring modelled per score bucket
    bootstrap_samples: Annotated[int, Field(ge=20, le=10_000)]
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)]
    seed: int


class EvaluateParams(_Section):
    # The slices come from the project's declaration; the holdout is the one train kept.
    permutation_repeats: Annotated[int, Field(ge=1, le=50)]
    censored: CensoredParams


class ExplainParams(_Section):
    sample_rows: Annotated[int, Field(ge=10, le=5000)]
    background_rows: Annotated[int, Field(ge=5, le=500)]
    examples_top_k: Annotated[int, Field(ge=1, le=50)]
    api_top_k: Annotated[int, Field(ge=1, le=50)]
    seed: int


class OnnxParams(_Section):
    """The ONNX form registered with every version, and how close it must score."""

    enabled: bool
    parity_atol: Annotated[float, Field(gt=0, le=0.1)]  # max |P ONNX - P scikit-learn|


class RegisterParams(_Section):
    # The experiment and model name are the project's (kaizen.yaml `model:`).
    candidate_alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    onnx: OnnxParams


class FloorsParams(_Section):
    roc_auc: Rate
    brier: Rate


class NonInferiorityParams(_Section):
    roc_auc_margin: Annotated[float, Field(ge=0, le=0.5)]
    brier_margin: Annotated[float, Field(ge=0, le=0.5)]
    bootstrap_samples: Annotated[int, Field(ge=100, le=100_000)]
    confidence: Annotated[float, Field(gt=0.5, lt=1)]
    seed: int


class SliceParams(_Section):
    tolerance_roc_auc: Annotated[float, Field(ge=0, le=0.5)]
    min_rows: Annotated[int, Field(ge=1)]
    min_positives: Annotated[int, Field(ge=1)]


class BehaviourParams(_Section):
    # Also checked: the score only rises with train.monotone_increasing; and it does not
    # move with the row id or event time (never model inputs).
    invariant_to: list[str]
    sample_rows: Annotated[int, Field(ge=10, le=100_000)]


class BudgetParams(_Section):
    # One-row predict_proba in the gate's thread's CPU time, p99 (the median of 3 trials): a
    # busy neighbour inflates wall time, not CPU time, so the verdict does not flip with load.
    cpu_p99_ms: Annotated[float, Field(gt=0)]
    sample_rows: Annotated[int, Field(ge=20, le=10_000)] = 200  # holdout rows timed one by one
    model_size_mb: Annotated[float, Field(gt=0)]


class SequentialParams(_Section):
    """The production gate's looks at its live evidence and the alpha they spend."""

    spending: Literal["obrien_fleming", "pocock"]  # Lan-DeMets spending function
    alpha: Annotated[float, Field(gt=0, lt=0.5)]  # one-sided, over every look together
    looks: Annotated[int, Field(ge=1, le=20)]
    horizon_positives: Annotated[int, Field(ge=1)]  # positive live labels at the last look


class ProductionParams(_Section):
    mode: Literal["shadow", "canary"]
    canary_share: Annotated[float, Field(ge=0, le=0.5)]
    bake_days: Annotated[int, Field(ge=0, le=365)]
    max_bake_days: Annotated[int, Field(ge=1, le=730)]
    min_labelled: Annotated[int, Field(ge=1)]
    min_positives: Annotated[int, Field(ge=1)]
    roc_auc_margin: Annotated[float, Field(ge=0, le=0.5)]
    max_error_rate: Rate
    sequential: SequentialParams
    replace_baking_challenger: bool  # False: a new candidate waits until the challenger is judged

    @model_validator(mode="after")
    def _bake_window(self) -> ProductionParams:
        if self.max_bake_days <= self.bake_days:
            raise ValueError("promote.production.max_bake_days must be greater than bake_days")
        return self


class LoadTestParams(_Section):
    """The short locust run against the challenger before it may become champion (and the
    defaults of `make loadtest`)."""

    enabled: bool
    users: Annotated[int, Field(ge=1, le=1000)]
    spawn_rate: Annotated[float, Field(gt=0)]
    duration_seconds: Annotated[int, Field(ge=1, le=3600)]
    p99_ms: Annotated[float, Field(gt=0)]
    health_share: Annotated[float, Field(ge=0.0, lt=1.0)]
    wait_max_seconds: Annotated[float, Field(ge=0.0, le=60)]
    sample_requests: Annotated[int, Field(ge=1)]  # recent real requests the users replay
    startup_timeout_seconds: Annotated[float, Field(gt=0, le=600)]
    warmup_requests: Annotated[int, Field(ge=0, le=10_000)]
    seed: int


class PromoteParams(_Section):
    champion_alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    challenger_alias: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    floors: FloorsParams
    non_inferiority: NonInferiorityParams
    slices: SliceParams
    behaviour: BehaviourParams
    budget: BudgetParams
    production: ProductionParams
    load_test: LoadTestParams | None  # required; null only in records older than the gate
    # Candidates trained for these reasons must beat the champion (the CI's lower bound of
    # the ROC AUC difference > 0); the others need only be non-inferior (>= -margin).
    require_improvement: list[Trigger]

    @classmethod
    def from_record(cls, params: dict) -> PromoteParams:
        """The params a decision was recorded with; records from before the load gate have
        no `load_test`, and replay as they were judged: without one (and records from before
        `require_improvement` were all judged on non-inferiority). Records from before the
        production gate spent alpha across looks (it re-tested daily at a fixed alpha, a rule
        it no longer has) are refused in one line rather than re-judged by another rule."""
        production = params.get("production") or {}
        if production and "sequential" not in production:
            raise InputError(
                "this decision was recorded before promote.production.sequential, when the "
                "production gate re-tested daily at a fixed alpha; it cannot be replayed now"
            )
        return cls.model_validate({"load_test": None, "require_improvement": [], **params})

    def comparison(self, trigger: str | None) -> str:
        """The staging test for a candidate trained for `trigger`: "improvement" or
        "non_inferiority" (an unrecorded trigger, from before triggers were, is the latter)."""
        return "improvement" if trigger in self.require_improvement else "non_inferiority"


class ServeParams(_Section):
    """The prediction API: the decision, freshness, hot reload, batch size and prediction log."""

    decision_threshold: Annotated[float, Field(gt=0.0, lt=1.0)]
    # The decision below the threshold, and at or above it (e.g. [approve, review]).
    decisions: tuple[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]]
    freshness_policy: Literal["mark", "refuse"]
    # A request some of whose views are missing or past their TTL: `refer` answers
    # `refer_decision` (a person decides, never the threshold), `score` decides on what is
    # there. An entity with no view at all is a 404 under either.
    incomplete_policy: Literal["refer", "score"]
    refer_decision: Annotated[str, Field(min_length=1)]
    alias_refresh_seconds: Annotated[float, Field(ge=0.1, le=3600)]
    canary_salt: Annotated[str, Field(min_length=1, max_length=200)]
    batch_max_rows: Annotated[int, Field(ge=1, le=10_000)]
    log_queue_max: Annotated[int, Field(ge=1, le=10_000_000)]
    log_flush_rows: Annotated[int, Field(ge=1)]
    log_flush_seconds: Annotated[float, Field(gt=0, le=3600)]
    online_timeout_seconds: Annotated[float, Field(gt=0, le=60)]  # a Redis read gives up then
    model_format: Literal["sklearn", "onnx"]  # which registered form scores requests
    online_read: Literal[
        "kaizen", "feast"
    ]  # who reads the online store: Kaizen directly, or Feast's SDK

    @model_validator(mode="after")
    def _flush_fits_queue(self) -> ServeParams:
        if self.log_flush_rows > self.log_queue_max:
            raise ValueError(
                f"serve.log_flush_rows ({self.log_flush_rows}) must not exceed "
                f"serve.log_queue_max ({self.log_queue_max})"
            )
        return self


class MonitorParams(_Section):
    """The monitor: windows, drift and business thresholds, alerts and the retrain guard."""

    current_window_days: Days  # the days compared with the champion's reference
    history_days: Days  # how many past daily runs the report's trend plots show
    min_rows: Annotated[int, Field(ge=10)]  # fewer current rows than this: drift is not judged
    psi_threshold: Annotated[float, Field(gt=0, le=10)]  # a feature drifts when PSI exceeds this
    p_value: Annotated[
        float, Field(gt=0, lt=1)
    ]  # ... and its KS / chi-squared p-value is below this
    drift_share: Rate  # drift breach: more than this share of the model's inputs drift
    prediction_psi_threshold: Annotated[
        float, Field(gt=0, le=10)
    ]  # served scores vs holdout scores
    positive_rate_alert: Rate  # business breach: the rate of positive labels reaches this
    positive_rate_window_days: Days  # rows whose label became final in these days
    positive_rate_min_labels: Annotated[int, Field(ge=1)]  # fewer final labels: not judged
    quality_min_labelled: Annotated[int, Field(ge=1)]  # labelled predictions to score a version
    skew_tolerance: Annotated[float, Field(ge=0)]  # relative difference still counted as equal
    skew_alert: Rate  # skew breach: a feature mismatches on more than this share of requests
    freshness_slo_days: dict[
        str, Annotated[int, Field(ge=0, le=365)]
    ]  # per view: newest day >= ds - N
    retrain_cooldown_days: Annotated[
        int, Field(ge=0, le=365)
    ]  # at most one retrain request per N days
    retrain_persist_days: Days  # a breach asks for a retrain once it has lasted this many runs
    plots_every_days: Days = 1  # the report's figures: every run (1), or every N days and on alerts


class ScoreboardParams(_Section):
    """`make kaizen-eval`: the loop on a simulated world, and the targets it is held to."""

    start: dt.date  # day 1, the first scored day
    days: Annotated[int, Field(ge=60, le=730)]
    history_days: Annotated[int, Field(ge=0, le=730)]  # the store's past before day 1
    shock_day: Annotated[int, Field(ge=2)]  # 1-based: the first shocked day
    world: dict[str, Any]  # the generator's params for the scored world (over project.simulate)
    bad_days: list[str]  # DAY:SOURCE:KIND, DAY 1-based (a generator fault kind)
    fix_after_days: Annotated[int, Field(ge=1, le=30)]  # the operator re-lands and replays then
    label_horizon_days: Annotated[int, Field(ge=1, le=365)]  # hindsight for the truth labels
    oracle_every_days: Annotated[int, Field(ge=1, le=30)]  # the oracle retrains this often
    oracle_jobs: Annotated[int, Field(ge=1, le=64)]  # its independent fits run in parallel
    history_jobs: Annotated[int, Field(ge=1, le=2)]  # 2: the history backfill is pipelined
    worse_margin: Annotated[float, Field(ge=0, le=1)]  # a champion this much worse: "worse"
    detect_within_days: Days
    champion_within_days: Days
    oracle_tolerance: Annotated[float, Field(ge=0, le=1)]  # served AUC within this of the oracle
    explain_sample_rows: Annotated[int, Field(ge=10, le=5000)]  # explain.* in the loop's world
    explain_background_rows: Annotated[int, Field(ge=5, le=500)]
    cpu_p99_ms: Annotated[float, Field(gt=0)]  # promote.budget.cpu_p99_ms in the loop's world
    budget_sample_rows: Annotated[int, Field(ge=20, le=10_000)]  # promote.budget.sample_rows
    permutation_repeats: Annotated[int, Field(ge=1, le=50)]  # evaluate.* in the loop's world
    onnx: bool  # register.onnx.enabled in the loop's world
    retrain_min_new_labels: Annotated[int, Field(ge=0)]  # train.* in the loop's world
    monitor_plots_every_days: Days  # monitor.plots_every_days in the loop's world

    @model_validator(mode="after")
    def _shock_inside(self) -> ScoreboardParams:
        if self.shock_day >= self.days:
            raise ValueError(f"scoreboard.shock_day ({self.shock_day}) must be before days")
        for text in self.bad_days:
            day = text.split(":", 1)[0]
            if not day.isdigit() or not 1 <= int(day) <= self.days:
                raise ValueError(f"scoreboard.bad_days: {text!r} is not DAY:SOURCE:KIND in 1..days")
        return self


class Params(_Section):
    ingest: IngestParams
    feature_store: FeatureStoreParams
    training_set: TrainingSetParams
    train: TrainParams
    evaluate: EvaluateParams
    explain: ExplainParams
    # `register` would shadow ABCMeta.register on the model class; the YAML key is `register`.
    register_: RegisterParams = Field(alias="register")
    promote: PromoteParams
    serve: ServeParams
    monitor: MonitorParams
    scoreboard: ScoreboardParams
    # The project's own section, validated by the model its kaizen.yaml names (Runtime).
    project: dict[str, Any] = {}


def load_params(path: Path) -> Params:
    """Read and validate `params.yaml`; any problem is one ConfigError line naming the key."""
    where = path.name
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameters file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        from kaizen.errors import describe_validation_error

        raise ConfigError(describe_validation_error(exc, where)) from None
