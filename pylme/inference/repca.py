"""lme4's ``rePCA``: principal components of each grouping factor's relative covariance
factor, to see how many dimensions a (singular) random-effects structure supports.

For each grouping factor the terms' relative covariance factors T (the Lambda blocks, so
Sigma = sigma^2 T T') are put side by side in a block-diagonal matrix whose singular values
are the components' standard deviations in units of sigma (lme4's scale), and whose left
singular vectors are the rotation; a zero standard deviation is a direction with no variance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg

from ..rbase.printing import format_numbers, render_table


class Prcomp:
    """One grouping factor's components (R's prcomp object): ``sdev`` and ``rotation``."""

    def __init__(self, sdev: np.ndarray, rotation: np.ndarray):
        self.sdev, self.rotation = sdev, rotation

    def importance(self) -> pd.DataFrame:
        """summary.prcomp's importance: standard deviation, proportion of variance and
        cumulative proportion (rounded to 5 decimals, as R), one column per component."""
        var = self.sdev**2 / np.sum(self.sdev**2) if np.any(self.sdev > 0) else np.full(self.sdev.size, np.nan)
        cols = [f"[,{k + 1}]" for k in range(self.sdev.size)]
        return pd.DataFrame([self.sdev, np.round(var, 5), np.round(np.cumsum(var), 5)], columns=cols,
                            index=["Standard deviation", "Proportion of Variance", "Cumulative Proportion"])

    def __str__(self) -> str:
        n, k = self.rotation.shape
        cols = {f"[,{j + 1}]": format_numbers(self.rotation[:, j], 7) for j in range(k)}
        return "\n".join([f"Standard deviations (1, .., p={self.sdev.size}):", r_vector(self.sdev), "",
                          f"Rotation (n x k) = ({n} x {k}):",
                          render_table(cols, row_names=[f"[{i + 1},]" for i in range(n)], right_all=True)])


class PrcompList(dict):
    """lme4's prcomplist: grouping factor -> Prcomp; ``summary()`` gives the importance tables."""

    def summary(self) -> dict[str, pd.DataFrame]:
        return {name: pc.importance() for name, pc in self.items()}

    def __str__(self) -> str:
        parts = [f"${name}\n{pc}\n" for name, pc in self.items()]
        return "\n".join(parts) + '\nattr(,"class")\n[1] "prcomplist"'

    __repr__ = __str__


def print_importance(summary: dict[str, pd.DataFrame]) -> str:
    """R's print of ``summary(rePCA(fm))``: per factor, "Importance of components:" and the
    table with 4 significant digits per column."""
    out = []
    for name, imp in summary.items():
        cols = {c: format_numbers(imp[c].to_numpy(), 4) for c in imp.columns}
        out.append(f"${name}\nImportance of components:\n"
                   + render_table(cols, row_names=list(imp.index), right_all=True) + "\n")
    return "\n".join(out)


def r_vector(x: np.ndarray, width: int = 80) -> str:
    """R's print of an unnamed numeric vector (7 significant digits, ``[i]`` at each line's start)."""
    cells = [c.strip() for c in format_numbers(x, 7)]
    w = max(len(c) for c in cells)
    lab = len(f"[{len(cells)}]")
    per_line = max(1, (width - lab) // (w + 1))
    lines = []
    for start in range(0, len(cells), per_line):
        head = f"[{start + 1}]".rjust(lab)
        lines.append(head + "".join(" " + c.rjust(w) for c in cells[start:start + per_line]))
    return "\n".join(lines)


def rePCA(fm) -> PrcompList:
    """lme4's ``rePCA(fm)``: per grouping factor, the singular values (sdev) and left singular
    vectors (rotation) of its terms' relative covariance factors put block-diagonally."""
    rt = fm.lmod.reTrms
    blocks: dict[str, list[np.ndarray]] = {}
    for t, T in zip(rt.terms, rt.lam.blocks(fm.theta)):
        blocks.setdefault(t.group, []).append(T)
    out = PrcompList()
    for name, Ts in blocks.items():
        u, d, _ = np.linalg.svd(scipy.linalg.block_diag(*Ts))
        out[name] = Prcomp(d, u)
    return out
