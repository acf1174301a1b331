"""Group values as distinct keys: one explicit missing group, no silent merging of ``1`` and ``"1"``.

`encode_groups` is what `group_metrics` and `group_balanced_weights` split examples by. Missing
values (None and NaN) form one group named `MISSING_GROUP`, reported and counted like any other (a
model that fails people whose attribute was not recorded is worth knowing about) rather than
dropped, merged into "overall" or split into one empty group per NaN. Numbers and strings in one
column (``1`` and ``"1"``) are refused: NumPy would turn both into ``"1"`` and a report keyed by
either could not be looked up by the other.

Example:
    >>> import numpy as np
    >>> from tfxfer.fairness.groups import encode_groups
    >>> codes, values = encode_groups(["b", None, "a", np.nan, "b"])
    >>> values, codes.tolist()
    (['(missing)', 'a', 'b'], [2, 0, 1, 0, 2])
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, bounded_repr

#: The group that None and NaN group values are reported under.
MISSING_GROUP = "(missing)"


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return math.isnan(float(value))
    return False


def _kind(value) -> str:
    if isinstance(value, (str, np.str_)):
        return "str"
    if isinstance(value, numbers.Number):  # bool, int, float and their NumPy types compare as numbers
        return "number"
    return type(value).__name__


def encode_groups(groups, *, name: str = "groups") -> tuple[np.ndarray, list]:
    """``(codes, values)``: one int code per example and the distinct group values it indexes.

    ``values`` are sorted (numbers numerically, strings alphabetically, `MISSING_GROUP` first);
    None and NaN map to `MISSING_GROUP`.

    Raises:
        ArgumentError: ``groups`` that is not 1-D.
        ArgumentTypeError: numbers mixed with strings (``1`` and ``"1"``), or unhashable values.
        DataError: a real group literally named `MISSING_GROUP` beside missing values.
    """
    array = np.asarray(groups) if isinstance(groups, np.ndarray) else None
    if array is not None and array.ndim != 1:
        raise ArgumentError(name, f"an array of shape {array.shape}", "must be 1-D (one group per example)")
    if array is None:
        if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
            raise ArgumentTypeError(name, groups, "a sequence with one group value per example")
        items = list(groups)
    else:
        items = array.tolist()
    has_missing = named_missing = False
    keys, kinds = [], {}
    for i, value in enumerate(items):
        if _is_missing(value):
            has_missing = True
            keys.append(None)
            continue
        if isinstance(value, np.generic):
            value = value.item()
        try:
            hash(value)
        except TypeError:
            raise ArgumentTypeError(f"{name}[{i}]", value, "a hashable group value (a str or a number)") from None
        kinds.setdefault(_kind(value), (i, value))
        named_missing = named_missing or value == MISSING_GROUP
        keys.append(value)
    if len(kinds) > 1:
        shown = ", ".join(f"{name}[{i}]={bounded_repr(v)} ({k})" for k, (i, v) in sorted(kinds.items()))
        raise ArgumentTypeError(name, items, f"values of one type (numbers or strings, not both: {shown}); "
                                "convert them, e.g. [str(g) for g in groups]")
    if has_missing and named_missing:
        raise DataError(f"`{name}` holds both missing values (None / NaN) and a group named {MISSING_GROUP!r}: "
                        "rename that group")
    present = set(keys) - {None}
    try:
        ordered = sorted(present)
    except TypeError:
        ordered = sorted(present, key=str)
    values = ([MISSING_GROUP] if has_missing else []) + ordered
    keys = [MISSING_GROUP if k is None else k for k in keys]
    index = {v: i for i, v in enumerate(values)}
    codes = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    return codes, values
