"""The feature server sheds load past its in-flight limit: at once, never its /health.

Feast's own app (`kaizen.featurestore.server.build_app`, the one `kaizen feature-server`
serves) under uvicorn in this process, its store's online read made a backend that serves one
read at a time (a lock and 30 ms), and 4 slots; 32 concurrent clients in a client process.
The prediction API's twin is in test_serving.py.
"""

from __future__ import annotations

import pytest
from overload import drive, judge, one_at_a_time, serving
from support import SmallStore

from kaizen.featurestore.server import build_app

pytestmark = pytest.mark.usefixtures("feast_environ_restored")
TOKEN = "test-token-" + "f" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATH = "/get-online-features"
BODY = {
    "feature_service": "credit_risk_v1",
    "entities": {"customer_id": [5], "requested_amount": [500.0]},
}


def test_past_its_in_flight_limit_the_feature_server_sheds_at_once(small_store: SmallStore) -> None:
    store = small_store.store()
    assert not store._get_provider().async_supported.online.read  # Feast reads in its threads
    limit = 4
    app = build_app(store, TOKEN, max_in_flight=limit)
    with one_at_a_time(store, "get_online_features", 0.03), serving(app) as url:
        single, answers = drive(url, PATH, BODY, AUTH, clients=32)
    measured = judge(answers, PATH, limit, single)
    assert app.shed == measured["shed"]
    print("\nfeature server shedding:", {k: round(v, 1) for k, v in measured.items()})
