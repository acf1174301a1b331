"""What a run prints: stage lines, progress bars and details, in quiet / normal / verbose modes.

* quiet (0): only the final summary lines (and errors).
* normal (1): one line per stage; on a terminal, Keras progress bars for training and tqdm bars
  for feature extraction, calibration, verification and benchmarking. When the output is not a
  terminal (a log file, a pipe, CI), plain lines instead: one per epoch (Keras ``verbose=2``) and
  one per finished loop (``  calibration: 200 images in 3.1 s``), no carriage returns, no colours.
* verbose (2): also fingerprints, skipped-stage reasons and per-variant details.

Example:
    >>> console = Console(verbosity=0)
    >>> [x for x in console.progress(range(3), desc="demo")]
    [0, 1, 2]
"""

from __future__ import annotations

import sys
import time

from tfxfer.utils.humanize import format_duration


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (progress bars) rather than a file or a pipe."""
    return bool(getattr(stream, "isatty", lambda: False)())


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
    def interactive(self) -> bool:
        """Progress bars (True) or plain lines: bars only when this console's stream and stdout (where
        Keras writes its bars) are both terminals."""
        return is_terminal(self.stream) and is_terminal(sys.stdout)

    @property
    def keras_verbose(self) -> int:
        """``verbose`` for ``fit``/``predict``: bars on a terminal, one line per epoch otherwise."""
        if self.verbosity == 0:
            return 0
        return 1 if self.interactive else 2

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
        if not self.interactive:
            return _LineBar(self._print, desc=desc, unit=unit)
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
        if not self.interactive:
            return self._lines(iterable, desc=desc, unit=unit)
        from tqdm import tqdm

        return tqdm(iterable, desc=f"  {desc}", total=total, unit=unit, file=self.stream, leave=True,
                    dynamic_ncols=True, mininterval=0.5)


    def _lines(self, iterable, *, desc: str, unit: str):
        start, count = time.perf_counter(), 0
        for item in iterable:
            count += 1
            yield item
        self._print(f"  {desc}: {count} {unit} in {format_duration(time.perf_counter() - start)}")


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


class _LineBar(_NoBar):
    """A counter for logs: one line when it closes (``  benchmark (LiteRT): 30/30 block in 4.2 s``)."""

    def __init__(self, write, *, desc: str, unit: str):
        self.write, self.desc, self.unit = write, desc, unit
        self.done, self.total, self.start = 0, None, time.perf_counter()

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def close(self) -> None:
        of = f"/{self.total}" if self.total else ""
        self.write(f"  {self.desc}: {self.done}{of} {self.unit} in {format_duration(time.perf_counter() - self.start)}")
