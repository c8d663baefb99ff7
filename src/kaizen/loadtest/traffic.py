"""The requests a load test sends: customers that exist, amounts drawn as the simulator draws
them. Pre-drawn here (seeded) and handed to locust as a JSON file, so the locust process needs
neither the lake nor Kaizen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kaizen.errors import InputError
from kaizen.runtime import Runtime
from kaizen.simulate import CATEGORY_P, CATEGORY_PRICE

RECENT_PARTITIONS = 7  # customers of the last week's drops: ones the online store has rows for
REQUESTS = 2000  # distinct (customer, amount) pairs the users cycle through


def requested_amounts(rng: np.random.Generator, n: int) -> list[float]:
    """Basket amounts as the simulator draws an order's amount (pre-shock category mix)."""
    category = rng.choice(len(CATEGORY_PRICE), size=n, p=CATEGORY_P[False])
    return [float(a) for a in np.round(CATEGORY_PRICE[category] * rng.lognormal(0, 0.35, n), 2)]


def known_customers(rt: Runtime, n: int, rng: np.random.Generator) -> list[int]:
    """Up to `n` customer ids from the lake's most recent silver customer partitions."""
    dates = rt.lake.partitions("silver", "customers")[-RECENT_PARTITIONS:]
    table = rt.lake.read_many("silver", "customers", dates, ["customer_id"]) if dates else None
    if table is None or table.num_rows == 0:
        raise InputError(
            f"no customers in the lake at {rt.settings.lake_root} (silver/customers): "
            "run the DataOps DAG (`make data`) before a load test"
        )
    ids = np.unique(table.column("customer_id").to_numpy())
    picked = rng.choice(ids, size=min(n, ids.size), replace=False)
    return [int(i) for i in picked]


def write_traffic(rt: Runtime, path: Path) -> int:
    """Write the request bodies for locust to `path`; returns how many customers they use."""
    p = rt.params.promote.load_test
    if p is None:
        raise InputError("params.yaml has no promote.load_test section")
    rng = np.random.default_rng(p.seed)
    customers = known_customers(rt, p.customers, rng)
    ids = rng.choice(customers, size=REQUESTS)
    bodies = [
        {"customer_id": int(c), "requested_amount": a}
        for c, a in zip(ids, requested_amounts(rng, REQUESTS), strict=True)
    ]
    path.write_text(json.dumps(bodies))
    return len(customers)
