"""Memory a fit will need, before it is allocated: the memory available on this machine and
CHOLMOD's prediction of the size of a sparse Cholesky factor from its symbolic analysis.

The prediction calls CHOLMOD's ``cholmod_analyze`` (int version) through ctypes on the
pattern alone, reads the factor's size (``xsize`` when supernodal, the sum of ``ColCount``
when simplicial) and its column counts, and frees it: no numeric factor is allocated.
Sizes are written in units of 1024 (``format_bytes``); ``lmerControl(memory_limit=)`` is
checked here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

_UNITS = ("bytes", "kB", "MB", "GB", "TB")


def format_bytes(n: float) -> str:
    """A size in readable units of 1024 (R's ``format(object.size(x), units = "auto")``):
    ``512 bytes``, ``977 kB``, ``1.5 MB``, ``3.25 GB``; three significant digits."""
    k = 0
    while k < len(_UNITS) - 1 and abs(n) >= 1024:
        n /= 1024
        k += 1
    return f"{n:.0f} bytes" if k == 0 else f"{n:.3g} {_UNITS[k]}"


def check_memory_limit(limit) -> float | None:
    """``lmerControl(memory_limit=)``: None (a share of the memory available), or a positive
    number of bytes."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0 or limit == float("inf"):
        raise ValueError(f"memory_limit must be a positive number of bytes (e.g. 4e9, or 4 * 2**30 for 4 GB), "
                         f"or None for 80% of the memory available; not {limit!r}")
    return float(limit)


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages (os.sysconf)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class _Sparse(ctypes.Structure):
    _fields_ = [("nrow", ctypes.c_size_t), ("ncol", ctypes.c_size_t), ("nzmax", ctypes.c_size_t),
                ("p", ctypes.c_void_p), ("i", ctypes.c_void_p), ("nz", ctypes.c_void_p),
                ("x", ctypes.c_void_p), ("z", ctypes.c_void_p),
                ("stype", ctypes.c_int), ("itype", ctypes.c_int), ("xtype", ctypes.c_int),
                ("dtype", ctypes.c_int), ("sorted", ctypes.c_int), ("packed", ctypes.c_int)]


class _FactorHead(ctypes.Structure):
    """The leading fields of cholmod_factor (stable across CHOLMOD 2 to 5)."""

    _fields_ = [("n", ctypes.c_size_t), ("minor", ctypes.c_size_t), ("Perm", ctypes.c_void_p),
                ("ColCount", ctypes.c_void_p), ("IPerm", ctypes.c_void_p), ("nzmax", ctypes.c_size_t),
                ("p", ctypes.c_void_p), ("i", ctypes.c_void_p), ("x", ctypes.c_void_p), ("z", ctypes.c_void_p),
                ("nz", ctypes.c_void_p), ("next", ctypes.c_void_p), ("prev", ctypes.c_void_p),
                ("nsuper", ctypes.c_size_t), ("ssize", ctypes.c_size_t), ("xsize", ctypes.c_size_t),
                ("maxcsize", ctypes.c_size_t), ("maxesize", ctypes.c_size_t),
                ("super", ctypes.c_void_p), ("pi", ctypes.c_void_p), ("px", ctypes.c_void_p), ("s", ctypes.c_void_p),
                ("ordering", ctypes.c_int), ("is_ll", ctypes.c_int), ("is_super", ctypes.c_int)]


@lru_cache(maxsize=1)
def _cholmod():
    name = ctypes.util.find_library("cholmod")
    for candidate in ([name] if name else []) + ["libcholmod.so.3", "libcholmod.so.5", "libcholmod.so.4"]:
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.cholmod_analyze.restype = ctypes.c_void_p
        return lib
    return None


@dataclass
class FactorSize:
    """CHOLMOD's prediction for a Cholesky factor: stored values, and the work of the numeric
    factorisation as the sum of squared column counts (q^3 / 3 for a dense factor of order q)."""

    entries: int
    flops: float


def predicted_factor(A_lower: sp.csc_matrix) -> FactorSize | None:
    """The size of the Cholesky factor CHOLMOD would compute for the symmetric matrix whose lower
    triangle is ``A_lower`` (default ordering, as scikit-sparse uses); None if CHOLMOD cannot be
    loaded."""
    lib = _cholmod()
    if lib is None:
        return None
    A = sp.csc_matrix(A_lower)
    indptr = np.ascontiguousarray(A.indptr, dtype=np.int32)
    indices = np.ascontiguousarray(A.indices, dtype=np.int32)
    cs = _Sparse(A.shape[0], A.shape[1], indices.size, indptr.ctypes.data, indices.ctypes.data, None, None, None,
                 -1, 0, 0, 0, 1, 1)  # stype lower, CHOLMOD_INT, CHOLMOD_PATTERN, double, sorted, packed
    common = ctypes.create_string_buffer(1 << 16)  # larger than sizeof(cholmod_common)
    lib.cholmod_start(common)
    try:
        ptr = lib.cholmod_analyze(ctypes.byref(cs), common)
        if not ptr:
            return None
        head = _FactorHead.from_address(ptr)
        counts = np.ctypeslib.as_array(ctypes.cast(head.ColCount, ctypes.POINTER(ctypes.c_int)), (head.n,)).astype(float)
        size = FactorSize(int(head.xsize) if head.is_super else int(counts.sum()), float(np.sum(counts**2)))
        lib.cholmod_free_factor(ctypes.byref(ctypes.c_void_p(ptr)), common)
        return size
    finally:
        lib.cholmod_finish(common)


@dataclass
class BlockPlan:
    """One block of the factor and the memory it needs."""

    name: str
    terms: list[str]
    kind: str  # "diagonal", "block-diagonal", "sparse map", "dense", "sparse", "tiled", "dense [X y]"
    order: int
    bytes: float

    def describe(self) -> str:
        order = f"; order {self.order}" if self.order else ""
        return f"{self.name} ({self.kind}, {', '.join(self.terms)}{order}): {format_bytes(self.bytes)}"
