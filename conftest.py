"""Shared fixtures of every tier and every project's tests. One Airflow home, one S3 server,
one Spark session and one small simulated world per session; each project's own source
folder (projects/<name>/src) is importable.

Services: in CI (`CI=true`) a test that needs PostgreSQL, Redis or the S3 server fails when
the service is missing; elsewhere it is skipped with the reason.
"""

import sys
from pathlib import Path

for _src in sorted(Path(__file__).parent.glob("projects/*/src")):
    if str(_src) not in sys.path:
        sys.path.insert(0, str(_src))


import datetime as dt
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from credit_risk.params import SimulateParams
from support import (
    CREDIT_RISK,
    FEAST_VARIABLES,
    LABELLED_DATES,
    LABELLED_DAYS,
    REPO,
    STALE_ID,
    SmallStore,
    make_settings,
    run_pipeline,
    service_unavailable,
    small_world,
    tcp_open,
)

from kaizen.config import Settings, get_settings
from kaizen.params import load_params
from kaizen.runtime import Runtime


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the developer's .env, lake and Airflow home out of the tests."""
    root = tmp_path_factory.mktemp("session")
    patch = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("KAIZEN_"):
            patch.delenv(key)
    patch.setenv("KAIZEN_HOME", str(REPO))
    patch.setenv("KAIZEN_PROJECTS_DIR", str(REPO / "projects"))  # whatever a test's home is
    patch.setenv("KAIZEN_PROJECT", "credit_risk")  # the worked example, unless a test says
    patch.setenv("KAIZEN_RAW_ROOT", str(root / "raw"))
    patch.setenv("KAIZEN_LAKE_ROOT", str(root / "lake"))
    patch.setenv("KAIZEN_AIRFLOW_HOME", str(root / "airflow"))
    patch.setenv("KAIZEN_GX_UNCOMMITTED_DIR", str(root / "gx"))
    patch.setenv("GX_ANALYTICS_ENABLED", "false")
    patch.chdir(root)  # so no stray .env is read from the checkout
    get_settings.cache_clear()
    yield root
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test of the credit_risk project: its own raw landing zone and lake."""
    return Settings(
        _env_file=None,
        home=REPO,
        project="credit_risk",
        raw_root=str(tmp_path / "raw"),
        lake_root=str(tmp_path / "lake"),
        gx_uncommitted_dir=tmp_path / "gx",
        gx_data_docs="failures",  # rendering every page costs ~1 s; one test checks "every"
    )


@pytest.fixture
def rt(settings: Settings) -> Runtime:
    return Runtime(settings)


@pytest.fixture(scope="session")
def params_simulate() -> SimulateParams:
    return SimulateParams.model_validate(
        load_params(CREDIT_RISK / "params.yaml").project["simulate"]
    )


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A private SeaweedFS on loopback with fresh credentials, for the whole session."""
    from kaizen.errors import KaizenError
    from kaizen.seaweed import running, weed_binary

    try:
        weed_binary()
    except KaizenError as exc:
        service_unavailable("S3 server (SeaweedFS)", str(exc))
    directory = tmp_path_factory.mktemp("seaweed")
    try:
        with running(directory) as endpoint:
            yield endpoint
    except KaizenError as exc:
        service_unavailable("S3 server (SeaweedFS)", str(exc))


@pytest.fixture
def s3_settings(s3: object, tmp_path: Path) -> Settings:
    """Settings whose raw landing zone and lake live in the session's S3 bucket."""
    prefix = f"s3://{s3.bucket}/t-{tmp_path.name}"  # type: ignore[attr-defined]
    return Settings(
        _env_file=None,
        home=REPO,
        project="credit_risk",
        raw_root=f"{prefix}/raw",
        lake_root=f"{prefix}/lake",
        s3_endpoint_url=s3.endpoint_url,  # type: ignore[attr-defined]
        s3_access_key_id=s3.access_key_id,  # type: ignore[attr-defined]
        s3_secret_access_key=s3.secret_access_key,  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The one SparkSession of the test session (starting Spark costs 8-14 s here)."""
    from kaizen.spark import get_spark, stop_spark

    session = get_spark()
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def postgres() -> str:
    if not tcp_open("127.0.0.1", 5432):
        service_unavailable("PostgreSQL", "nothing answers on 127.0.0.1:5432 (run `make services`)")
    return "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not tcp_open("127.0.0.1", 6379):
        service_unavailable("Redis", "nothing answers on 127.0.0.1:6379 (run `make services`)")
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def labelled_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 days of a 2,000-customer store through the gate and the feature gate. Terms are 0
    days, so invoices of the first 15 days have a final label by the last day."""
    root = tmp_path_factory.mktemp("labelled-world")
    rt = Runtime(make_settings(root))
    world = small_world(days=LABELLED_DAYS, customers=2000, terms_days=0, seed=21)
    from credit_risk.simulate import simulate

    simulate(world, rt.settings.raw_root)
    run_pipeline(rt, LABELLED_DATES)
    return root


@pytest.fixture
def feast_environ_restored() -> Iterator[None]:
    """`open_store` exports the store's variables; keep them out of the other test modules."""
    with pytest.MonkeyPatch.context() as patch:
        for key in FEAST_VARIABLES:
            if key in os.environ:
                patch.setenv(key, os.environ[key])
            else:
                patch.delenv(key, raising=False)
        yield


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> SmallStore:
    """Simulate, gate, featurize and materialize 4 days (about 10 s), then add STALE_ID."""
    from credit_risk.simulate import simulate

    from kaizen.featurestore.store import apply, open_store
    from kaizen.lake import PUBLISHED, Partition
    from kaizen.runtime import Runtime
    from kaizen.stages.featurize import featurize
    from kaizen.stages.ingest import ingest
    from kaizen.stages.materialize import materialize
    from kaizen.stages.validate import validate
    from kaizen.stages.validate_features import validate_features

    root = tmp_path_factory.mktemp("feature-store")
    settings = Settings(
        _env_file=None,
        home=REPO,
        project="credit_risk",
        raw_root=str(root / "raw"),
        lake_root=str(root / "lake"),
        gx_uncommitted_dir=root / "gx",
        gx_data_docs="failures",
        feast_data_dir=root / "feast",
    )
    rt = Runtime(settings)
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in range(4, 0, -1)]
    world = rt.project_params.simulate.model_copy(
        update={"start": dt.date.fromisoformat(days[0]), "days": 4, "customers": 200}
    )
    saved = {key: os.environ.get(key) for key in FEAST_VARIABLES}
    try:
        simulate(world, settings.raw_root)
        apply(settings)
        for ds in days:
            for source in rt.catalog.names:
                ingest(source, ds, rt)
                validate(source, ds, rt)
            featurize(ds, rt)
            validate_features(ds, rt)
        materialize(days[0], today.isoformat(), rt)
        # STALE_ID: customer 5's latest rows, re-keyed and backdated per view.
        midnight = dt.datetime.combine(today, dt.time(), dt.UTC)
        ages = {"customer_profile": 2, "customer_activity": 10, "customer_payments": 0}
        store = open_store(settings)
        for view, age in ages.items():
            frame = rt.lake.read_table(Partition(PUBLISHED, view, days[-1])).to_pandas()
            row = frame[frame["customer_id"] == 5].copy()
            row["customer_id"] = STALE_ID
            row["event_timestamp"] = midnight - dt.timedelta(days=age)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                store.write_to_online_store(view, row)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return SmallStore(root=root, settings=settings, midnight=midnight)
