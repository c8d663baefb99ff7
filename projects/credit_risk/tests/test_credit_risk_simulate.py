"""The simulator: deterministic bytes, faithful faults, a learnable label and a real shock."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from credit_risk.simulate import FAULT_KINDS, Fault, World, simulate
from support import small_world

from kaizen.errors import InputError


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_same_bytes(tmp_path: Path) -> None:
    p = small_world(days=6, shock_date=dt.date(2026, 1, 4))
    simulate(p, str(tmp_path / "a"))
    simulate(p, str(tmp_path / "b"))
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert len(a) == 18 and a == b
    other = tree_digest(tmp_path / "a")
    simulate(small_world(days=6, seed=12, shock_date=dt.date(2026, 1, 4)), str(tmp_path / "c"))
    assert tree_digest(tmp_path / "c") != other


def test_rerun_leaves_identical_files_and_refuses_to_change_them(tmp_path: Path) -> None:
    p = small_world(days=2)
    first = simulate(p, str(tmp_path))
    again = simulate(p, str(tmp_path))
    assert (first.written, again.written, again.unchanged) == (6, 0, 6)
    with pytest.raises(InputError, match="immutable"):
        simulate(small_world(days=2, seed=99), str(tmp_path))
    assert simulate(small_world(days=2, seed=99), str(tmp_path), overwrite=True).written == 6


def test_faults_corrupt_only_their_file(tmp_path: Path) -> None:
    p = small_world(days=4)
    simulate(p, str(tmp_path / "clean"))
    faults = [Fault.parse("2026-01-02:orders:unit"), Fault.parse("2026-01-03:customers:empty")]
    simulate(p, str(tmp_path / "faulty"), faults=faults)
    clean, faulty = tree_digest(tmp_path / "clean"), tree_digest(tmp_path / "faulty")
    changed = sorted(k for k in clean if clean[k] != faulty[k])
    assert changed == ["customers/2026-01-03.csv", "orders/2026-01-02.csv"]
    assert (tmp_path / "faulty" / "customers" / "2026-01-03.csv").read_bytes() == b""
    dollars = pd.read_csv(tmp_path / "clean" / "orders" / "2026-01-02.csv").amount
    cents = pd.read_csv(tmp_path / "faulty" / "orders" / "2026-01-02.csv").amount
    assert np.allclose(cents, dollars * 100)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_kind_is_visible_in_the_file(tmp_path: Path, kind: str) -> None:
    source = "customers" if kind == "carriage_returns" else "orders"
    simulate(
        small_world(days=2), str(tmp_path), faults=[Fault.parse(f"2026-01-02:{source}:{kind}")]
    )
    blob = (tmp_path / source / "2026-01-02.csv").read_bytes()
    clean_header = {
        "customers": "customer_id,signup_date,region,annual_income,credit_limit,updated_at",
        "orders": "order_id,customer_id,order_ts,amount,category,channel",
    }[source]
    if kind == "empty":
        assert blob == b""
        return
    header = blob.split(b"\n", 1)[0].decode()
    if kind == "renamed_column":
        assert header == clean_header.replace("amount", "amount_usd")
    elif kind == "missing_column":
        assert header == clean_header.replace(",channel", "")
    elif kind == "malformed":
        with pytest.raises(Exception):  # noqa: B017 - any parser must refuse it
            import pyarrow as pa
            import pyarrow.csv as pacsv

            pacsv.read_csv(pa.BufferReader(blob))
    else:
        frame = pd.read_csv(
            tmp_path / source / "2026-01-02.csv", keep_default_na=False, na_values=[""]
        )
        if kind == "nulls":
            assert frame.customer_id.isna().sum() >= 1
        elif kind == "unit":
            assert frame.amount.median() > 5_000
        elif kind == "duplicates":
            assert frame.duplicated().sum() >= 1
        elif kind == "carriage_returns":
            assert frame.region.str.contains("\r").sum() >= 1


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02:orders",
        "2026-13-02:orders:nulls",
        "2026-01-02:refunds:nulls",
        "2026-01-02:orders:fire",
        "2026-01-02:payments:carriage_returns",
    ],
)
def test_bad_fault_spec_is_refused(text: str) -> None:
    with pytest.raises(InputError):
        Fault.parse(text)


def test_fault_outside_the_simulated_days_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outside the simulated days"):
        simulate(
            small_world(days=2), str(tmp_path), faults=[Fault.parse("2026-02-01:orders:nulls")]
        )
    assert not any(tmp_path.iterdir())


def test_drops_are_typed_rows_inside_their_day(tmp_path: Path) -> None:
    simulate(small_world(days=3), str(tmp_path))
    for source, column in (
        ("customers", "updated_at"),
        ("orders", "order_ts"),
        ("payments", "updated_at"),
    ):
        frame = pd.read_csv(tmp_path / source / "2026-01-02.csv")
        ts = pd.to_datetime(frame[column], utc=True)
        assert ts.min() >= pd.Timestamp("2026-01-02", tz="UTC")
        assert ts.max() < pd.Timestamp("2026-01-03", tz="UTC")
    payments = pd.read_csv(tmp_path / "payments" / "2026-01-02.csv")
    assert payments.invoice_id.is_unique


# -- the label is learnable, and the shock moves both its rate and its relationships ----------


def _observable_frame(p) -> pd.DataFrame:
    """Per invoice: the label (paid 30+ days late) and features a platform could compute."""
    world, frames = World(p), {"customers": [], "orders": [], "payments": []}
    for _ in range(p.days):
        for source, frame in world.step().items():
            frames[source].append(frame)
    cust = pd.concat(frames["customers"]).groupby("customer_id").last()
    pay = pd.concat(frames["payments"])
    for c in ("issued_ts", "paid_ts", "updated_at"):
        pay[c] = pd.to_datetime(pay[c].replace("", None), utc=True)
    pay["due_date"] = pd.to_datetime(pay.due_date, utc=True)
    inv = pay.sort_values("updated_at").groupby("invoice_id").last().reset_index()
    inv["deadline"] = inv.due_date + pd.Timedelta(days=30)
    end = pd.Timestamp(p.start, tz="UTC") + pd.Timedelta(days=p.days)
    inv = inv[inv.deadline < end].copy()
    inv["late"] = (inv.paid_ts.isna() | (inv.paid_ts >= inv.deadline)).astype(int)
    inv["resolved"] = inv.paid_ts.where(
        inv.paid_ts.notna() & (inv.paid_ts < inv.deadline), inv.deadline
    )
    pairs = inv[["invoice_id", "customer_id", "issued_ts"]].merge(
        inv[["customer_id", "issued_ts", "resolved", "late", "paid_ts", "amount"]],
        on="customer_id",
        suffixes=("", "_h"),
    )
    known = pairs[pairs.resolved < pairs.issued_ts]
    history = known.groupby("invoice_id").agg(n_known=("late", "size"), n_late=("late", "sum"))
    unpaid = pairs[
        (pairs.issued_ts_h < pairs.issued_ts)
        & (pairs.paid_ts.isna() | (pairs.paid_ts > pairs.issued_ts))
    ]
    balance = unpaid.groupby("invoice_id").amount.sum().rename("open_balance")
    x = inv.join(cust[["region", "annual_income", "credit_limit", "signup_date"]], on="customer_id")
    x = (
        x.set_index("invoice_id")
        .join(history)
        .join(balance)
        .fillna({"n_known": 0, "n_late": 0, "open_balance": 0})
    )
    x["late_ratio"] = x.n_late / x.n_known.where(x.n_known > 0)
    x["utilisation"] = x.open_balance / x.credit_limit
    x["size"] = x.amount / (x.annual_income / 12)
    x["tenure"] = (x.issued_ts - pd.to_datetime(x.signup_date, utc=True)).dt.days
    x["region"] = x.region.astype("category").cat.codes
    return x.reset_index()


FEATURES = [
    "late_ratio",
    "n_late",
    "n_known",
    "utilisation",
    "size",
    "tenure",
    "region",
    "annual_income",
    "credit_limit",
    "amount",
]


@pytest.mark.slow
def test_label_is_learnable_and_the_shock_changes_it() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    shock = dt.date(2026, 5, 1)
    p = small_world(days=240, customers=5000, seed=7, shock_date=shock)
    x = _observable_frame(p)
    at = pd.Timestamp(shock, tz="UTC")
    pre, post = x[x.issued_ts < at], x[x.issued_ts >= at]
    assert pre.late.mean() == pytest.approx(0.05, abs=0.01)
    assert post.late.mean() == pytest.approx(0.10, abs=0.015)

    def model(frame: pd.DataFrame) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=0
        ).fit(frame[FEATURES], frame.late)

    cut = at - pd.Timedelta(days=30)
    before = model(pre[pre.issued_ts < cut])
    holdout = pre[pre.issued_ts >= cut]
    assert roc_auc_score(holdout.late, before.predict_proba(holdout[FEATURES])[:, 1]) >= 0.74

    # After the shock the old relationships are worse than ones learned from the new regime.
    split = at + pd.Timedelta(days=40)
    after = model(post[post.issued_ts < split])
    recent = post[post.issued_ts >= split]
    old_auc = roc_auc_score(recent.late, before.predict_proba(recent[FEATURES])[:, 1])
    new_auc = roc_auc_score(recent.late, after.predict_proba(recent[FEATURES])[:, 1])
    assert new_auc > old_auc + 0.01


def _drops(p: object, days: int) -> tuple[dict[str, list[pd.DataFrame]], World]:
    world, frames = World(p), {"customers": [], "orders": [], "payments": []}  # type: ignore[arg-type]
    for _ in range(days):
        for source, frame in world.step().items():
            frames[source].append(frame)
    return frames, world


def test_a_concept_only_shock_leaves_every_input_row_as_without_it() -> None:
    """P(late | inputs) moves, the inputs do not: customers and orders are the bytes of a world
    without the shock, while the late rate follows late_rate_after (and, with it, payments)."""
    days, shock = 40, dt.date(2026, 1, 11)
    calm, _ = _drops(small_world(days=days, customers=600, shock_date=None), days)
    concept, world = _drops(
        small_world(days=days, customers=600, shock_date=shock, shock_kind="concept"), days
    )
    mixed, _ = _drops(
        small_world(days=days, customers=600, shock_date=shock, shock_kind="mixed"), days
    )
    for source in ("customers", "orders"):
        for a, b in zip(calm[source], concept[source], strict=True):
            pd.testing.assert_frame_equal(a, b)
    assert any(
        not a.equals(b) for a, b in zip(calm["orders"], mixed["orders"], strict=True)
    )  # the mixed shock moves the spend mix
    assert any(not a.equals(b) for a, b in zip(calm["payments"], concept["payments"], strict=True))
    truth = world.truth()
    orders = pd.concat(concept["orders"], ignore_index=True)
    issued = pd.to_datetime(orders.set_index("order_id").order_ts)
    after = truth.invoice_id.map(issued) >= pd.Timestamp(shock, tz="UTC")
    # The intercept is solved per day for the target rate: the truth's mean is that rate.
    assert truth.p_late[after].mean() == pytest.approx(0.10, abs=0.005)
    assert truth.p_late[~after].mean() == pytest.approx(0.05, abs=0.005)


def test_the_truth_ranks_the_drawn_labels_and_is_in_no_drop(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    p = small_world(days=90, customers=800, shock_date=dt.date(2026, 2, 15))
    frames, world = _drops(p, 90)
    truth = world.truth().set_index("invoice_id").p_late
    assert truth.index.is_unique and truth.between(0, 1).all()
    payments = pd.concat(frames["payments"], ignore_index=True).drop_duplicates(
        "invoice_id", keep="last"
    )
    paid = payments[payments.paid_ts != ""]
    days_late = (
        pd.to_datetime(paid.paid_ts).dt.tz_localize(None) - pd.to_datetime(paid.due_date)
    ).dt.days
    late = (days_late >= 30).to_numpy()
    assert late.any() and not late.all()
    assert roc_auc_score(late, truth.loc[paid.invoice_id].to_numpy()) > 0.75
    for source in frames.values():
        assert all("p_late" not in f.columns for f in source)
