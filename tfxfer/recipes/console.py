"""What a run prints: stage lines, progress bars and details, in quiet / normal / verbose modes.

* quiet (0): only the final summary lines (and errors).
* normal (1): one line per stage, Keras progress bars for training, tqdm bars for feature
  extraction, calibration, verification and benchmarking.
* verbose (2): also fingerprints, skipped-stage reasons and per-variant details.

Example:
    >>> console = Console(verbosity=0)
    >>> [x for x in console.progress(range(3), desc="demo")]
    [0, 1, 2]
"""

from __future__ import annotations

import sys
import time


class Console:
    """Console output for a pipeline run."""

    def __init__(self, verbosity: int = 1, stream=None):
        if verbosity not in (0, 1, 2):
            from tfxfer.errors import ArgumentError

            raise ArgumentError("verbosity", verbosity, "must be 0 (quiet), 1 (normal) or 2 (verbose)")
        self.verbosity = verbosity
        self.stream = stream or sys.stdout
        self._start = time.perf_counter()

    @property
    def keras_verbose(self) -> int:
        """``verbose`` for ``fit``/``predict``: bars on a terminal, one line per epoch otherwise."""
        if self.verbosity == 0:
            return 0
        return 1 if getattr(self.stream, "isatty", lambda: False)() else 2

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def stage(self, name: str, status: str, detail: str = "") -> None:
        """``[  12.3s] finetune   ran     (detail)`` in normal and verbose modes."""
        if self.verbosity >= 1:
            elapsed = time.perf_counter() - self._start
            self._print(f"[{elapsed:7.1f}s] {name:<9} {status:<8} {detail}".rstrip())

    def counter(self, *, desc: str, unit: str = "it"):
        """``update(done, total)`` driving a tqdm bar (a no-op in quiet mode), and ``close()``."""
        if self.verbosity == 0:
            return _NoBar()
        from tqdm import tqdm

        return _Bar(tqdm(total=None, desc=f"  {desc}", unit=unit, file=self.stream, leave=True,
                         dynamic_ncols=True, mininterval=0.5))

    def info(self, text: str) -> None:
        if self.verbosity >= 1:
            self._print(text)

    def detail(self, text: str) -> None:
        if self.verbosity >= 2:
            self._print("  " + text)

    def always(self, text: str) -> None:
        self._print(text)

    def progress(self, iterable, *, desc: str, total: int | None = None, unit: str = "it"):
        """A tqdm bar over ``iterable`` (silent in quiet mode)."""
        if self.verbosity == 0:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, desc=f"  {desc}", total=total, unit=unit, file=self.stream, leave=True,
                    dynamic_ncols=True, mininterval=0.5)


class _NoBar:
    def update(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar(_NoBar):
    def __init__(self, bar):
        self.bar = bar

    def update(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
