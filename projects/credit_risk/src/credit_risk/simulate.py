"""The furniture-store credit-risk world: daily raw drops for customers, orders and payments.

The world is a small structural model, stepped one day at a time:

* every customer has a latent risk that also lowers their income and makes them pay late
  more often, so a customer's payment history reveals it;
* an order becomes an invoice due `terms_days` later; whether it is paid 30 or more days
  late is drawn from a logistic model of the latent risk, credit utilisation, the order's
  size relative to income, tenure and region, with the intercept solved each day so the
  late rate matches its target (`late_rate_before`, `late_rate_after` the shock);
* the shock changes the late rate *and* the relationship (utilisation and order size matter
  twice as much, one region is hit) and, unless `shock_kind` is `concept`, the spend mix
  (dearer categories, more web orders). A concept-only shock leaves every customer and order
  row exactly as without the shock: only the payments (and the features read from them)
  follow the new P(late | inputs);
* `World.truth()` keeps each invoice's true P(late), for the scoreboard's Bayes reference
  only: it is in no drop.

Every draw comes from a generator seeded by (seed, day), so the same arguments give the
same bytes, and injected faults only corrupt the written file, never the world: the days
after a faulty day are identical to a clean run.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pandas as pd

from credit_risk.params import CreditRiskParams, SimulateParams
from kaizen.errors import InputError
from kaizen.interval import parse_ds
from kaizen.logs import get_logger

log = get_logger(__name__)

REGIONS = np.array(["north", "south", "east", "west", "central"])
REGION_P = np.array([0.22, 0.20, 0.20, 0.20, 0.18])
CATEGORIES = np.array(["sofa", "bed", "table", "chair", "storage", "decor", "outdoor"])
CATEGORY_PRICE = np.array([1200.0, 900.0, 600.0, 150.0, 400.0, 60.0, 500.0])
CATEGORY_P = {
    False: [0.12, 0.10, 0.15, 0.22, 0.14, 0.20, 0.07],
    True: [0.20, 0.16, 0.15, 0.15, 0.12, 0.12, 0.10],
}
CHANNELS = np.array(["store", "web", "phone"])
CHANNEL_P = {False: [0.60, 0.35, 0.05], True: [0.40, 0.55, 0.05]}
# Logistic effects on "paid 30+ days late", before / after the shock.
EFFECTS = {
    False: {
        "risk": 1.8,
        "util": 0.9,
        "size": 0.35,
        "new": 0.5,
        "region": [0.0, 0.2, -0.1, 0.1, 0.0],
    },
    True: {"risk": 1.8, "util": 1.8, "size": 0.7, "new": 0.5, "region": [0.9, 0.2, -0.1, 0.1, 0.0]},
}
LATE_DAYS = 30  # the label: an invoice paid this many days or more after its due date
US_PER_DAY = 86_400_000_000
US_PER_S = 1_000_000
NEVER = np.iinfo(np.int64).max

SOURCES = ("customers", "orders", "payments")
FAULT_KINDS = (
    "nulls",
    "unit",
    "renamed_column",
    "missing_column",
    "duplicates",
    "carriage_returns",
    "empty",
    "malformed",
)
# Which column each fault corrupts, per source.
_NULL_COLUMN = {"customers": "region", "orders": "customer_id", "payments": "customer_id"}
_UNIT_COLUMNS = {
    "customers": ["annual_income", "credit_limit"],
    "orders": ["amount"],
    "payments": ["amount"],
}
_RENAME = {
    "customers": ("region", "region_code"),
    "orders": ("amount", "amount_usd"),
    "payments": ("amount", "amount_usd"),
}
_DROP_COLUMN = {"customers": "credit_limit", "orders": "channel", "payments": "due_date"}
_TEXT_COLUMN = {"customers": "region", "orders": "category"}


@dataclass(frozen=True)
class Fault:
    ds: str
    source: str
    kind: str

    @classmethod
    def parse(cls, text: str) -> Fault:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(
                f"invalid fault {text!r}: expected DATE:SOURCE:KIND, e.g. 2026-01-05:orders:nulls"
            )
        ds, source, kind = parts
        if source not in SOURCES:
            raise InputError(f"invalid fault {text!r}: source must be one of {', '.join(SOURCES)}")
        if kind not in FAULT_KINDS:
            raise InputError(
                f"invalid fault {text!r}: kind must be one of {', '.join(FAULT_KINDS)}"
            )
        if kind == "carriage_returns" and source not in _TEXT_COLUMN:
            raise InputError(f"invalid fault {text!r}: {source} has no text column to corrupt")
        return cls(parse_ds(ds), source, kind)


@dataclass
class SimulationReport:
    days: int = 0
    written: int = 0
    unchanged: int = 0
    rows: Counter = field(default_factory=Counter)
    late_invoices: int = 0
    invoices: int = 0

    @property
    def late_rate(self) -> float:
        return self.late_invoices / self.invoices if self.invoices else 0.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(score: np.ndarray, target: float) -> float:
    """The intercept a with mean(sigmoid(a + score)) == target (bisection; score may be empty)."""
    if score.size == 0:
        return float(np.log(target / (1 - target)))
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(mid + score).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _iso(us: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(us.astype("datetime64[us]"), unit="s"), "Z")


class World:
    """The simulated store; `step()` advances one day and returns that day's three drops."""

    def __init__(self, p: SimulateParams) -> None:
        if not 0 < p.late_rate_before < 1 or not 0 < p.late_rate_after < 1:
            raise InputError("late rates must be strictly between 0 and 1")
        self.p = p
        self.day = 0
        self._next_order = 1
        rng = np.random.default_rng([p.seed, 0xC0FFEE])
        n = p.customers
        start_us = self._day_us(0)
        # Customers: the latent risk lowers income; tenure reaches three years back.
        self.risk = rng.standard_normal(n)
        self.income = self._income(rng, self.risk)
        self.limit = self._limit(rng, self.income)
        self.region = rng.choice(len(REGIONS), size=n, p=REGION_P)
        self.signup_us = start_us - rng.integers(0, 3 * 365, size=n) * US_PER_DAY
        self.propensity = np.exp(0.6 * rng.standard_normal(n) - 0.18)
        self.balance = np.zeros(n)
        self.ids = np.arange(1, n + 1, dtype=np.int64)
        self.invoices_total = 0
        self.late_total = 0
        self._changed_today = np.arange(n)  # the CRM's first export holds every customer
        # Scheduled payments: day index -> list of (invoice row arrays).
        self._due: dict[int, list[pd.DataFrame]] = {}
        self._truth: list[pd.DataFrame] = []  # per day: invoice_id, its true P(late)

    # -- helpers ---------------------------------------------------------------------------
    def _day_us(self, day: int) -> int:
        start = dt.datetime.combine(self.p.start, dt.time(), dt.UTC)
        return int((start + dt.timedelta(days=day)).timestamp()) * US_PER_S

    def ds(self, day: int | None = None) -> str:
        return (self.p.start + dt.timedelta(days=self.day if day is None else day)).isoformat()

    def shocked(self, day: int) -> bool:
        shock = self.p.shock_date
        return shock is not None and self.p.start + dt.timedelta(days=day) >= shock

    def truth(self) -> pd.DataFrame:
        """Every invoice issued so far with the probability it was drawn late with."""
        if not self._truth:
            return pd.DataFrame({"invoice_id": pd.Series(dtype="int64"), "p_late": []})
        return pd.concat(self._truth, ignore_index=True)

    @staticmethod
    def _income(rng: np.random.Generator, risk: np.ndarray) -> np.ndarray:
        z = -0.5 * risk + np.sqrt(0.75) * rng.standard_normal(risk.size)
        return np.round(np.exp(10.9 + 0.4 * z), -2)

    @staticmethod
    def _limit(rng: np.random.Generator, income: np.ndarray) -> np.ndarray:
        return np.round(np.clip(income * rng.uniform(0.05, 0.15, income.size), 500, 20000), -2)

    # -- one day ---------------------------------------------------------------------------
    def step(self) -> dict[str, pd.DataFrame]:
        day, p = self.day, self.p
        rng = np.random.default_rng([p.seed, day + 1])
        day_us = self._day_us(day)
        shock = self.shocked(day)

        changed = self._signups_and_changes(rng, day_us) if day else self._changed_today
        customers = self._customer_rows(changed, rng, day_us)
        orders, invoices = self._orders(rng, day_us, shock)
        payments = self._payments(invoices, day)
        self.day += 1
        return {"customers": customers, "orders": orders, "payments": payments}

    def _signups_and_changes(self, rng: np.random.Generator, day_us: int) -> np.ndarray:
        p, n = self.p, self.ids.size
        new = rng.poisson(p.signups_per_day_rate * n)
        if new:
            risk = rng.standard_normal(new)
            income = self._income(rng, risk)
            self.risk = np.concatenate([self.risk, risk])
            self.income = np.concatenate([self.income, income])
            self.limit = np.concatenate([self.limit, self._limit(rng, income)])
            self.region = np.concatenate(
                [self.region, rng.choice(len(REGIONS), size=new, p=REGION_P)]
            )
            self.signup_us = np.concatenate([self.signup_us, np.full(new, day_us)])
            self.propensity = np.concatenate(
                [self.propensity, np.exp(0.6 * rng.standard_normal(new) - 0.18)]
            )
            self.balance = np.concatenate([self.balance, np.zeros(new)])
            self.ids = np.arange(1, n + new + 1, dtype=np.int64)
        changed = np.flatnonzero(rng.random(n) < p.changes_per_day_rate)
        raise_limit = rng.random(changed.size) < 0.6
        self.limit[changed[raise_limit]] = np.round(
            np.clip(
                self.limit[changed[raise_limit]] * rng.uniform(0.8, 1.3, raise_limit.sum()),
                500,
                20000,
            ),
            -2,
        )
        grow = changed[~raise_limit]
        self.income[grow] = np.round(self.income[grow] * rng.uniform(0.9, 1.15, grow.size), -2)
        return np.union1d(changed, np.arange(n, n + new))

    def _customer_rows(
        self, idx: np.ndarray, rng: np.random.Generator, day_us: int
    ) -> pd.DataFrame:
        updated = day_us + np.sort(rng.integers(6 * 3600, 22 * 3600, idx.size)) * US_PER_S
        signup = (self.signup_us[idx] // US_PER_DAY).astype("datetime64[D]")
        return pd.DataFrame(
            {
                "customer_id": self.ids[idx],
                "signup_date": np.datetime_as_string(signup, unit="D"),
                "region": REGIONS[self.region[idx]],
                "annual_income": self.income[idx],
                "credit_limit": self.limit[idx],
                "updated_at": _iso(updated),
            }
        )

    def _orders(
        self, rng: np.random.Generator, day_us: int, shock: bool
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        p = self.p
        active = np.flatnonzero(self.signup_us <= day_us)
        counts = rng.poisson(p.orders_per_customer_day * self.propensity[active])
        cust = np.repeat(active, counts)
        k = cust.size
        order_us = day_us + rng.integers(8 * 3600, 21 * 3600, k) * US_PER_S
        order_us.sort()
        cust = cust[rng.permutation(k)]
        mix = shock and p.shock_kind == "mixed"  # does the spend mix move with the shock?
        category = rng.choice(len(CATEGORIES), size=k, p=CATEGORY_P[mix])
        scale = (self.income[cust] / 60_000) ** 0.3 * (1.25 if mix else 1.0)
        amount = np.round(CATEGORY_PRICE[category] * rng.lognormal(0, 0.35, k) * scale, 2)
        channel = rng.choice(len(CHANNELS), size=k, p=CHANNEL_P[mix])
        ids = np.arange(self._next_order, self._next_order + k, dtype=np.int64)
        self._next_order += k
        orders = pd.DataFrame(
            {
                "order_id": ids,
                "customer_id": self.ids[cust],
                "order_ts": _iso(order_us),
                "amount": amount,
                "category": CATEGORIES[category],
                "channel": CHANNELS[channel],
            }
        )
        invoices = self._invoices(rng, ids, cust, order_us, amount, day_us, shock)
        return orders, invoices

    def _invoices(
        self,
        rng: np.random.Generator,
        ids: np.ndarray,
        cust: np.ndarray,
        order_us: np.ndarray,
        amount: np.ndarray,
        day_us: int,
        shock: bool,
    ) -> pd.DataFrame:
        p, fx = self.p, EFFECTS[shock]
        k = ids.size
        # Invoices are issued within minutes of the order, on the same day.
        issued_us = np.minimum(
            order_us + rng.integers(60, 3600, k) * US_PER_S, day_us + US_PER_DAY - US_PER_S
        )
        np.add.at(self.balance, cust, amount)
        util = np.clip(self.balance[cust] / self.limit[cust], 0, 3)
        size = np.log(amount / (self.income[cust] / 12))
        new = (day_us - self.signup_us[cust]) < 180 * US_PER_DAY
        score = (
            fx["risk"] * self.risk[cust]
            + fx["util"] * util
            + fx["size"] * size
            + fx["new"] * new
            + np.asarray(fx["region"])[self.region[cust]]
        )
        target = p.late_rate_after if shock else p.late_rate_before
        p_late = _sigmoid(_solve_intercept(score, target) + score)
        late = rng.random(k) < p_late
        self._truth.append(pd.DataFrame({"invoice_id": ids, "p_late": p_late}))
        # On-time payers settle before the due date or a little after; riskier ones later.
        slight = rng.random(k) < _sigmoid(-1.2 + 0.8 * self.risk[cust])
        due_day = (issued_us // US_PER_DAY) + p.terms_days
        days_after_due = np.where(
            late,
            LATE_DAYS + rng.exponential(25, k).astype(np.int64),
            np.where(
                slight, rng.integers(1, LATE_DAYS, k), -rng.integers(0, max(p.terms_days, 1), k)
            ),
        )
        never = late & (rng.random(k) < 0.15)
        paid_day = np.maximum(due_day + days_after_due, issued_us // US_PER_DAY + 1)
        paid_us = np.where(
            never, NEVER, paid_day * US_PER_DAY + rng.integers(7 * 3600, 20 * 3600, k) * US_PER_S
        )
        self.late_total += int(late.sum())
        self.invoices_total += k
        return pd.DataFrame(
            {
                "invoice_id": ids,
                "cust": cust,
                "issued_us": issued_us,
                "due_day": due_day,
                "paid_us": paid_us,
                "amount": amount,
            }
        )

    def _payments(self, issued: pd.DataFrame, day: int) -> pd.DataFrame:
        first_day = self._day_us(0) // US_PER_DAY
        for paid_day, group in issued[issued.paid_us != NEVER].groupby(
            issued.paid_us // US_PER_DAY
        ):
            self._due.setdefault(int(paid_day - first_day), []).append(group)
        settled = self._due.pop(day, [])
        paid = pd.concat(settled, ignore_index=True) if settled else issued.iloc[:0]
        np.subtract.at(self.balance, paid.cust.to_numpy(), paid.amount.to_numpy())
        # An invoice issued and settled the same day appears once, settled.
        issued_open = issued[~issued.invoice_id.isin(paid.invoice_id)].assign(paid_us=NEVER)
        rows = pd.concat([issued_open, paid], ignore_index=True)
        updated = np.where(rows.paid_us == NEVER, rows.issued_us, rows.paid_us)
        order = np.lexsort((rows.invoice_id.to_numpy(), updated))
        rows, updated = rows.iloc[order], updated[order]
        paid_ts = np.where(
            rows.paid_us == NEVER, "", _iso(np.where(rows.paid_us == NEVER, 0, rows.paid_us))
        )
        return pd.DataFrame(
            {
                "invoice_id": rows.invoice_id.to_numpy(),
                "customer_id": self.ids[rows.cust.to_numpy()],
                "issued_ts": _iso(rows.issued_us.to_numpy()),
                "due_date": np.datetime_as_string(
                    rows.due_day.to_numpy().astype("datetime64[D]"), unit="D"
                ),
                "paid_ts": paid_ts,
                "amount": rows.amount.to_numpy(),
                "updated_at": _iso(updated),
            }
        )


# -- files ---------------------------------------------------------------------------------
def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.2f", lineterminator="\n")
    return buf.getvalue().encode()


def inject(frame: pd.DataFrame, source: str, kind: str, rng: np.random.Generator) -> bytes:
    """The bytes of `frame` with one fault of `kind` injected."""
    frame = frame.copy()
    n = len(frame)
    some = max(1, n // 10)
    if kind == "empty":
        return b""
    if kind == "nulls":
        rows = rng.choice(n, size=min(n, some), replace=False)
        column = _NULL_COLUMN[source]
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[rows], column] = None
    elif kind == "unit":
        for column in _UNIT_COLUMNS[source]:
            frame[column] = frame[column] * 100  # cents where dollars were expected
    elif kind == "renamed_column":
        frame = frame.rename(columns=dict([_RENAME[source]]))
    elif kind == "missing_column":
        frame = frame.drop(columns=[_DROP_COLUMN[source]])
    elif kind == "duplicates":
        dup = rng.choice(n, size=min(n, max(1, n // 20)), replace=False)
        frame = pd.concat([frame, frame.iloc[dup]]).iloc[rng.permutation(n + dup.size)]
    elif kind == "carriage_returns":
        column = _TEXT_COLUMN[source]
        rows = rng.choice(n, size=min(n, max(1, n // 30)), replace=False)
        frame.loc[frame.index[rows], column] = frame[column].iloc[rows] + "\r\n(see note)"
    blob = to_csv_bytes(frame)
    if kind == "malformed":
        cut = blob[: max(1, len(blob) * 3 // 5)]
        return cut + b',"unterminated,\x00\xff,extra,fields,here\n'
    return blob


def write_file(url: str, blob: bytes, storage_options: dict, *, overwrite: bool) -> bool:
    """Land one raw file. Raw files are immutable: a different existing file is an error."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    if fs.exists(path):
        if fs.cat_file(path) == blob:
            return False
        if not overwrite:
            raise InputError(
                f"{url} already exists with different content; raw files are immutable (use --overwrite to re-land a corrected drop)"
            )
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if fs.protocol in ("file", "local") or "file" in fs.protocol:
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}.tmp"
        with fs.open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)  # readers see the old file or the whole new one
    else:
        fs.pipe_file(path, blob)  # a single PUT is atomic
    return True


def simulate(
    p: SimulateParams,
    out: str,
    *,
    faults: Iterable[Fault] = (),
    storage_options: dict | None = None,
    overwrite: bool = False,
    dates: Iterable[str] | None = None,
    progress: Callable[[str, dict[str, int]], None] | None = None,
) -> SimulationReport:
    """Write `p.days` daily drops under `out/<source>/<ds>.csv` and report what was written."""
    storage_options = storage_options or {}
    faults = list(faults)
    end = p.start + dt.timedelta(days=p.days)
    for fault in faults:
        if not p.start.isoformat() <= fault.ds < end.isoformat():
            raise InputError(
                f"fault date {fault.ds} is outside the simulated days {p.start}..{end - dt.timedelta(days=1)}"
            )
    by_day = {(f.ds, f.source): f.kind for f in faults}
    keep = set(dates) if dates else None  # simulate every day, land only these
    world = World(p)
    report = SimulationReport()
    for day in range(p.days):
        ds = world.ds(day)
        drops = world.step()
        counts = {}
        for source, frame in drops.items():
            kind = by_day.get((ds, source))
            if keep is not None and ds not in keep:
                continue
            if kind is None:
                blob = to_csv_bytes(frame)
            else:
                rng = np.random.default_rng([p.seed, day + 1, SOURCES.index(source), 7])
                blob = inject(frame, source, kind, rng)
                log.info("injected fault %s into %s %s", kind, source, ds)
            url = f"{out.rstrip('/')}/{source}/{ds}.csv"
            if write_file(url, blob, storage_options, overwrite=overwrite):
                report.written += 1
            else:
                report.unchanged += 1
            report.rows[source] += len(frame)
            counts[source] = len(frame)
        report.days += 1
        if progress is not None and counts:
            progress(ds, counts)
    report.late_invoices = world.late_total
    report.invoices = world.invoices_total
    return report


def generate(
    params: CreditRiskParams,
    raw_root: str,
    *,
    start: dt.date | None = None,
    days: int | None = None,
    shift_date: dt.date | None = None,
    faults: Iterable[Fault | str] = (),
    storage_options: dict | None = None,
    overwrite: bool = False,
    dates: Iterable[str] | None = None,
    progress: Callable[[str, dict[str, int]], None] | None = None,
    **overrides: object,
) -> SimulationReport:
    """The generator hook (kaizen.yaml `generator`): `project.simulate` with these overrides.

    `shift_date` is the shock; `overrides` are any other `simulate` keys (customers, seed)."""
    update: dict[str, object] = dict(overrides)
    if start is not None:
        update["start"] = start
    if days is not None:
        update["days"] = days
    if shift_date is not None:
        update["shock_date"] = shift_date
    p = SimulateParams.model_validate({**params.simulate.model_dump(), **update})
    parsed = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
    return simulate(
        p,
        raw_root,
        faults=parsed,
        storage_options=storage_options,
        overwrite=overwrite,
        dates=dates,
        progress=progress,
    )
