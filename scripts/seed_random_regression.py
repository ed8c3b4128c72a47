"""Simulate the random-regression design of seed 000 (Ogorek, "Random regression coefficients
using lme4", R-bloggers 2012) in numpy, and save it to tests/reference/seed_random_regression.csv.

Design: N = 30 units with attribute a ~ N(0, 1); each unit's intercept and slope have
conditional means 1 - 0.15 a and 3 + 0.3 a plus bivariate normal disturbances
(sds 0.2 and 0.5, correlation 0.9); J = 30 measurements per unit on the shared grid
x = -4 + 8 k / 30, k = 0..29; y = intercept + slope * x + 0.75 * N(0, 1).
The draws come from numpy's Generator, so they differ from the R post's draws.

Run ``python scripts/seed_random_regression.py`` to (re)write the CSV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CSV_PATH = Path(__file__).resolve().parents[1] / "tests" / "reference" / "seed_random_regression.csv"
FORMULA = "y ~ x + a + x*a + (1 + x | unit)"

N_UNITS, N_PER_UNIT = 30, 30
SD_INTERCEPT, SD_SLOPE, CORRELATION, SD_RESIDUAL = 0.2, 0.5, 0.9, 0.75


def simulate(seed: int = 2345) -> pd.DataFrame:
    """The simulated data: columns unit (categorical "1".."30"), a, x, y; rows by unit, then x."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(N_UNITS)
    cov_rs = CORRELATION * SD_INTERCEPT * SD_SLOPE
    cov = np.array([[SD_INTERCEPT**2, cov_rs], [cov_rs, SD_SLOPE**2]])
    disturbances = rng.multivariate_normal(np.zeros(2), cov, size=N_UNITS)
    intercept = 1 - 0.15 * a + disturbances[:, 0]
    slope = 3 + 0.3 * a + disturbances[:, 1]
    x_grid = -4 + np.arange(N_PER_UNIT) * (8 / N_PER_UNIT)
    unit_idx = np.repeat(np.arange(N_UNITS), N_PER_UNIT)
    x = np.tile(x_grid, N_UNITS)
    y = intercept[unit_idx] + x * slope[unit_idx] + SD_RESIDUAL * rng.standard_normal(unit_idx.size)
    return pd.DataFrame({"unit": _unit_factor(unit_idx + 1), "a": a[unit_idx], "x": x, "y": y})


def _unit_factor(units: np.ndarray) -> pd.Categorical:
    """Unit numbers as a categorical with levels "1".."30" in numeric order."""
    levels = [str(u) for u in range(1, N_UNITS + 1)]
    return pd.Categorical([str(int(u)) for u in units], categories=levels)


def save(data: pd.DataFrame, path: Path = CSV_PATH) -> None:
    """Write the data; pandas writes floats in their shortest round-trip form."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False)


def load(path: Path = CSV_PATH) -> pd.DataFrame:
    """Read the saved data back, exactly, with unit as a categorical."""
    data = pd.read_csv(path)
    data["unit"] = _unit_factor(data["unit"].to_numpy())
    return data


if __name__ == "__main__":
    frame = simulate()
    save(frame)
    assert load().equals(frame), "CSV does not round-trip"
    print(f"wrote {CSV_PATH} ({len(frame)} rows)")
