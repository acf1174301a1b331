"""Group reweighting: per-example weights that give every group (or group x class cell) the same
total weight, the simplest mitigation of a worst-group gap (pass them as ``sample_weight`` to
``fit``; compare the audit before and after).

Example:
    >>> import numpy as np
    >>> from tfxfer.fairness import group_balanced_weights
    >>> w = group_balanced_weights(["mono", "mono", "mono", "poly"])
    >>> w.tolist(), float(w.mean())
    ([0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0], 1.0)
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import DataError
from tfxfer.fairness.groups import encode_groups
from tfxfer.metrics import class_ids


def group_balanced_weights(groups, *, labels=None) -> np.ndarray:
    """Weights (mean 1) under which each group, or each (group, class) cell when ``labels`` are
    given, carries the same total weight.

    Args:
        groups: one group value per example.
        labels: optional class ids (or one-hot rows); balances group x class cells instead.

    Groups are split as `group_metrics` splits them (`tfxfer.fairness.groups.encode_groups`): None
    and NaN form one missing group, numbers mixed with strings are refused.

    Raises:
        DataError: ``labels`` of another length than ``groups``, or no examples; labels that are
            not class ids.
        ArgumentTypeError: group values mixing numbers and strings.
    """
    if isinstance(groups, np.ndarray) and groups.ndim != 1 or not hasattr(groups, "__len__") or not len(groups):
        raise DataError(f"`groups` must be a non-empty 1-D array; got shape {np.shape(groups)}")
    codes, _ = encode_groups(groups)  # None / NaN: one missing group; 1 and "1" refused
    keys = codes
    if labels is not None:
        ids = class_ids(labels)
        if len(ids) != len(groups):
            raise DataError(f"`labels` has {len(ids)} entries but `groups` has {len(groups)}")
        keys = codes * (int(ids.max()) + 1) + ids
    _, cell, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[cell]
    return weights * (len(weights) / weights.sum())
