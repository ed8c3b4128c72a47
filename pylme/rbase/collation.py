"""The order R sorts strings in: the level order of a factor built from strings.

R sorts strings with ICU's collator in a UTF-8 locale (``en_US.UTF-8``, ``C.UTF-8``: ICU's root
collation, the Unicode Collation Algorithm: letters compared case-insensitively first, lower
case before upper case on a tie, punctuation before digits before letters), and by code point
when ``LC_COLLATE`` is ``C``: ``apple``, ``Banana``, ``cherry`` against ``Banana``, ``apple``,
``cherry``. The first string is the reference level, so the order decides the model's
coefficients. pylme sorts as R does in a UTF-8 locale, through the ICU library R links to
(libicui18n, called by ctypes), whatever the locale of the Python process;
``set_collation("C")`` asks for C order, ``set_collation("sv_SE")`` for a locale's tailoring.
Without ICU, strings sort in C order and a warning says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache

from ..errors import PylmeWarning

_setting = {"collation": "root"}
_LOCALE = re.compile(r"^(C|root|[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*)$")


def set_collation(collation: str) -> str:
    """Choose how string levels sort: ``"C"`` (code points: R under ``LC_COLLATE=C``) or an ICU
    locale name (``"root"``, the default and R's order in ``en_US.UTF-8``; ``"sv_SE"``, ...).
    Returns the previous setting (R's ``Sys.setlocale("LC_COLLATE", ...)`` for pylme)."""
    if not isinstance(collation, str) or not _LOCALE.match(collation):
        raise ValueError(f"collation must be 'C' or an ICU locale name such as 'root' or 'en_US', not {collation!r}")
    previous = _setting["collation"]
    _setting["collation"] = collation
    return previous


def get_collation() -> str:
    """The current collation (``"root"`` unless set_collation changed it)."""
    return _setting["collation"]


def sorted_strings(values: Iterable[str]) -> list[str]:
    """Distinct strings in R's order under the current collation."""
    distinct = sorted(set(values))  # code-point order: C collation, and the tie-break
    collation = _setting["collation"]
    if collation == "C" or len(distinct) < 2:
        return distinct
    collator = _collator(collation)
    if collator is None:
        warnings.warn("ICU (libicui18n) was not found: string levels are sorted in C order, as R does under "
                      "LC_COLLATE=C; R in a UTF-8 locale sorts them with ICU (install ICU, or call "
                      "pylme.set_collation('C') to choose C order)", PylmeWarning, stacklevel=3)
        return distinct
    return sorted(distinct, key=collator.sort_key)


class _Collator:
    """An ICU collator (``ucol_open``) and its sort keys (``ucol_getSortKey``)."""

    def __init__(self, lib: ctypes.CDLL, suffix: str, locale: str):
        opener = getattr(lib, "ucol_open" + suffix)
        opener.restype = ctypes.c_void_p
        opener.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
        self._key = getattr(lib, "ucol_getSortKey" + suffix)
        self._key.restype = ctypes.c_int32
        self._key.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32]
        status = ctypes.c_int(0)
        self._handle = opener(b"" if locale == "root" else locale.encode(), ctypes.byref(status))
        if status.value > 0 or not self._handle:
            raise OSError(f"ICU could not open a collator for {locale!r} (error {status.value})")

    def sort_key(self, text: str) -> tuple[bytes, str]:
        utf16 = text.encode("utf-16-le")
        size = 4 * len(utf16) + 16
        while True:
            buf = ctypes.create_string_buffer(size)
            need = self._key(self._handle, utf16, len(utf16) // 2, buf, size)
            if need <= size:
                return buf.raw[:need], text
            size = need


@lru_cache(maxsize=8)
def _collator(locale: str) -> _Collator | None:
    found = _icu_library()
    if found is None:
        return None
    return _Collator(*found, locale)


@lru_cache(maxsize=1)
def _icu_library() -> tuple[ctypes.CDLL, str] | None:
    """ICU's i18n library and its symbol suffix (``_72`` on Debian 12; none on macOS, Windows)."""
    for stem in ("icui18n", "icuin", "icucore", "icu"):
        path = ctypes.util.find_library(stem)
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        digits = re.findall(r"\d+", path.rsplit("/", 1)[-1])
        for suffix in [""] + [f"_{d}" for d in digits] + [f"_{v}" for v in range(80, 49, -1)]:
            if hasattr(lib, "ucol_open" + suffix):
                return lib, suffix
    return None
