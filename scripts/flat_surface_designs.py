"""Write the conformance corpus's two flat-surface designs of issue 14 (regression cases with their
data inline, conformance/cases/regressions/flat_*.json), simulated in numpy with fixed seeds:

- ``flat_growth``: a random quadratic growth curve, three correlated terms per subject
  (23 subjects x 10 occasions = 230 rows, time 0..9 unscaled), seed 2;
- ``flat_factor_slope``: a factor-valued random slope ``(0 + f | g)`` with a 3-level factor
  (12 groups x 15 rows), seed 1.

On both, lme4's BOBYQA path ends on a flat surface: pylme's BOBYQA, on the same path to rounding,
stops elsewhere, and the finish (pylme.fitting.polish) goes to the optimum. Run from the repository root:
``.venv/bin/python scripts/flat_surface_designs.py``; then record lme4 with
``python -m conformance record --cases 'flat_*'``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def growth(seed: int = 2, n_id: int = 23, n_t: int = 10) -> pd.DataFrame:
    """y = 10 + 1.5 t - 0.1 t^2 + subject's (intercept, t, t^2) effects + N(0, 2^2) noise."""
    rng = np.random.default_rng(seed)
    t = np.tile(np.arange(n_t, dtype=float), n_id)
    ids = np.repeat([f"s{i + 1:02d}" for i in range(n_id)], n_t)
    corr = np.array([[1.0, 0.3, -0.2], [0.3, 0.5, 0.1], [-0.2, 0.1, 0.05]])
    b = rng.multivariate_normal(np.zeros(3), corr, n_id, check_valid="ignore") * [3.0, 1.0, 0.2]  # corr as drawn: not PSD
    bi = np.repeat(b, n_t, axis=0)
    y = 10 + 1.5 * t - 0.1 * t**2 + bi[:, 0] + bi[:, 1] * t + bi[:, 2] * t**2 + rng.normal(0, 2.0, t.size)
    # the draw of a keep mask is part of the stream that fixed the design; every row is kept
    keep = rng.random(t.size) > 0.0
    return pd.DataFrame({"y": np.round(y[keep], 4), "t": t[keep], "id": pd.Categorical(ids[keep])})


def factor_slope(seed: int = 1, n_g: int = 12, n_per: int = 15) -> pd.DataFrame:
    """y = 5 + f's effect + group's effect for its level of f (correlated across levels) + N(0, 1)."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i + 1:02d}" for i in range(n_g)], n_per)
    f = rng.choice(["a", "b", "c"], g.size)
    corr = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]])
    b = rng.multivariate_normal(np.zeros(3), corr, n_g)
    fi = pd.Categorical(f, categories=["a", "b", "c"]).codes
    y = 5 + np.array([0, 1, -0.5])[fi] + b[np.repeat(np.arange(n_g), n_per), fi] + rng.normal(0, 1.0, g.size)
    return pd.DataFrame({"y": np.round(y, 4), "f": pd.Categorical(f, categories=["a", "b", "c"]),
                         "g": pd.Categorical(g)})


DESIGNS = {
    "flat_growth": (growth, "y ~ t + I(t^2) + (t + I(t^2) | id)",
                    "issue 14: a random quadratic growth curve, three correlated terms per subject (23 subjects x "
                    "10 occasions, time 0..9 unscaled; scripts/flat_surface_designs.py, growth(seed=2)); lme4 stops "
                    "early on the flat surface and warns"),
    "flat_factor_slope": (factor_slope, "y ~ f + (0 + f | g)",
                          "issue 14: a factor-valued random slope with a 3-level factor (12 groups x 15 rows; "
                          "scripts/flat_surface_designs.py, factor_slope(seed=1)); pylme's BOBYQA stops off lme4's "
                          "point on the flat surface (max |d theta| 1.5e-3 without the finish)"),
}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from conformance.cases import REGRESSIONS_DIR, write_inline

    for name, (make, formula, source) in DESIGNS.items():
        case = {"id": name, "dataset": "simulated", "formula": formula, "source": source,
                "data_csv": write_inline(make())}
        (REGRESSIONS_DIR / f"{name}.json").write_text(json.dumps(case, indent=1) + "\n")
        print(f"{name}: {formula}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
