"""Alpha spending for the production gate: a few declared looks instead of a daily re-test.

Testing the same growing evidence every day at a fixed alpha promotes far more often than
alpha says (repeated looks). Here the live evidence is judged at `looks` declared looks,
look k once the paired live evidence holds k / looks of `horizon_positives` positive labels,
and the one-sided alpha is spent across them by a Lan-DeMets spending function
(O'Brien-Fleming-type: almost nothing early; or Pocock-type: evenly). The boundaries are the
exact group-sequential ones for the planned information fractions t_k = k / looks: the
boundary c_k solves P(Z_1 < c_1, ..., Z_k < c_k) = 1 - alpha(t_k) for the z-scores of a
Brownian motion, by numerical integration. A look the
evidence skipped (two thresholds crossed in one day) keeps its boundary untested, which only
spends less.

A look is judged on the rows that first reached its threshold (the earliest final labels, in
the order they became final): the next day's gate at the same look sees the same rows and
reaches the same verdict, so waiting never adds a look.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm


def spent(t: float, alpha: float, spending: str) -> float:
    """Cumulative one-sided alpha spent by information fraction `t` (Lan and DeMets 1983)."""
    t = min(max(t, 0.0), 1.0)
    if t == 0:
        return 0.0
    if spending == "obrien_fleming":
        return float(2 * (1 - norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(t))))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"unknown spending function {spending!r}")


@dataclass(frozen=True)
class Look:
    look: int  # 1-based
    looks: int
    information: float  # planned fraction t_k
    alpha_spent: float  # cumulative, through this look
    boundary_z: float  # promote when the look's z-score reaches this
    nominal_alpha: float  # 1 - Phi(boundary): the one-sided level this look alone tests at

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


_GRID = 0.005  # integration step on the Brownian-motion scale (sd <= 1)
_FLOOR = -12.0  # below this the null density is nil


@lru_cache(maxsize=32)
def boundaries(alpha: float, looks: int, spending: str) -> tuple[Look, ...]:
    """The boundary of every look; a pure function of the params (so a replay meets it).

    Recursive numerical integration (Armitage, McPherson and Rowe 1969) of the score
    process S_k = Z_k sqrt(t_k), a Brownian motion under the null: the density of S_k on
    the paths that have not crossed yet, carried look to look on a grid; each boundary is
    the root of "crossing first at look k" = alpha(t_k) - alpha(t_{k-1})."""
    from scipy.optimize import brentq

    fractions = [(k + 1) / looks for k in range(looks)]
    cumulative = [spent(t, alpha, spending) for t in fractions]
    grid = density = None
    found: list[float] = []
    before = 0.0
    for k, t in enumerate(fractions):
        step = t - before
        sd = math.sqrt(step)
        increment = cumulative[k] - (cumulative[k - 1] if k else 0.0)

        def excess(b: float, grid=grid, density=density, sd=sd, spend=increment) -> float:
            """P(crossing first at this look) - the alpha it may spend."""
            if grid is None:
                return float(norm.sf(b / sd)) - spend
            return float(np.trapezoid(density * norm.sf((b - grid) / sd), grid)) - spend

        b = brentq(excess, -10.0, 40.0, xtol=1e-10)
        found.append(b / math.sqrt(t))
        nodes = np.arange(_FLOOR, b + _GRID / 2, _GRID)
        if grid is None:
            density = norm.pdf(nodes / sd) / sd
        else:
            kernel = norm.pdf((nodes[:, None] - grid[None, :]) / sd) / sd
            density = np.trapezoid(kernel * density[None, :], grid, axis=1)
        grid, before = nodes, t
    return tuple(
        Look(k + 1, looks, t, a, c, float(norm.sf(c)))
        for k, (t, a, c) in enumerate(zip(fractions, cumulative, found, strict=True))
    )


def thresholds(horizon_positives: int, looks: int, min_positives: int) -> list[int]:
    """Positives the evidence must hold for each look (never fewer than `min_positives`)."""
    return [
        max(math.ceil(horizon_positives * k / looks), min_positives) for k in range(1, looks + 1)
    ]


def reached(positives: int, marks: list[int]) -> int:
    """The latest look `positives` labels reach (0: not the first yet)."""
    return sum(1 for m in marks if positives >= m)
