"""Argument checks shared by every public function: one place says what "an int >= 1" means.

Each check returns the value (normalised to a Python number) or raises `ArgumentError` naming the
argument and what was received. ``bool`` is never accepted as a number (``True`` is an ``int`` in
Python, never what a caller meant), and NaN/Inf are refused wherever a float is expected.

Example:
    >>> from tfxfer.utils.validate import check_int, check_float
    >>> check_int("epochs", 3, low=0)
    3
    >>> check_float("base_lr", 1e-3, low=0, low_open=True)
    0.001
    >>> check_int("epochs", True)
    Traceback (most recent call last):
    ...
    tfxfer.errors.ArgumentError: `epochs` must be an int >= 0. Received: epochs=True
"""

from __future__ import annotations

import math
import numbers
import re

from tfxfer.errors import ArgumentError


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for real numbers (ints and floats, numpy's too), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_text(kind: str, low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"must be {kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"must be {kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"must be {kind} {'<' if high_open else '<='} {high}"
    return f"must be {kind}"


def check_int(name: str, value, *, low: int | None = 0, high: int | None = None, allow_none: bool = False):
    """``value`` as an ``int`` in ``[low, high]`` (either bound may be None), else `ArgumentError`."""
    if value is None and allow_none:
        return None
    ok = is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        requirement = _range_text("an int", low, high, False, False)
        raise ArgumentError(name, value, requirement + (" or None" if allow_none else ""))
    return int(value)


def check_float(name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, allow_none: bool = False):
    """``value`` as a finite ``float`` within the bounds (open or closed), else `ArgumentError`."""
    if value is None and allow_none:
        return None
    ok = is_number(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        requirement = _range_text("a finite number", low, high, low_open, high_open)
        raise ArgumentError(name, value, requirement + (" or None" if allow_none else ""))
    return float(value)


#: A name that becomes one file or folder name: letters, digits, '.', '_' or '-', never a path.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_safe_name(name: str, value, *, use: str = "") -> str:
    """``value`` if it is a `SAFE_NAME` (no path separators, no leading dot), else `ArgumentError`
    naming ``name``; ``use`` says what the name becomes (e.g. "it names the folder serving/<name>").

    Example:
        >>> check_safe_name("name", "model_v2")
        'model_v2'
    """
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ArgumentError(name, value, "must be letters, digits, '.', '_' or '-' (no path separators)"
                            + (f": {use}" if use else ""))
    return value



def check_unique_names(name: str, values) -> list:
    """``values`` as a list of names, none repeated (a repeated class or tag name would leave an id that
    no label ever takes, and count two classes as one).

    Example:
        >>> check_unique_names("class_names", ["neg", "pos", "neg"])
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentError: `class_names` must not repeat a name; 'neg' appears 2 times. Received: class_names=['neg', 'pos', 'neg']
    """
    values = list(values)
    seen: dict = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    repeated = [(v, k) for v, k in seen.items() if k > 1]
    if repeated:
        said = ", ".join(f"{v!r} appears {k} times" for v, k in repeated[:5])
        raise ArgumentError(name, values, f"must not repeat a name; {said}")
    return values
