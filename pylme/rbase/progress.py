"""Progress bars for long work (profiles, bootstrap, large fits): shown on a terminal, silent
otherwise, unless asked for explicitly."""
from __future__ import annotations

import sys


class _Silent:
    """The part of tqdm's interface pylme uses, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, show: bool | None = None):
    """A tqdm bar on stderr when ``show`` (None: when stderr is a terminal), else a silent one;
    ``total=None`` counts without an end (a fit's evaluations).
    The silent case does not touch tqdm at all (its locks misbehave in spawned workers)."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)
