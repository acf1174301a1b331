"""The gate's statistics: a paired 95 % interval of the accuracy drop, and how many examples decide.

`paired_drop_interval` is the accuracy drop of a file against its Keras model on the same examples,
with a paired 95 % interval from the examples the two disagree on (Agresti & Min 2005);
`examples_needed` is how many examples would put that interval wholly on one side of a limit, and
`target_examples` the fewest on which an agreement target can be judged at all.
`tfxfer.export.gate.compare_outputs` turns them into its verdicts ("pass", "fail", "undecided") and the
sizes it reports.

Example:
    >>> import numpy as np
    >>> same = np.ones(50, bool)  # the file right exactly where Keras is, 50 examples
    >>> [round(v, 2) for v in paired_drop_interval(same, same)], examples_needed(same, same, 1.0)
    ([0.0, -3.84, 3.84], 196)
"""

from __future__ import annotations

import numpy as np

Z95 = 1.959964


def paired_drop_interval(keras_correct, file_correct, *, z: float = Z95) -> tuple[float, float, float]:
    """``(drop, low, high)`` in points: the accuracy drop of a file against the Keras model on the same
    examples, with a paired 95 % interval.

    Only discordant examples carry information: ``b`` (Keras right, file wrong) and ``c`` (the other way).
    The drop is ``(b - c) / n``; its interval is the Wald interval of a paired difference of proportions
    with half an example added to each discordant cell (Agresti & Min 2005), so identical outputs on
    few examples still get an honest width (``n = 50``: about +-3.8 points, ``n = 524``: +-0.4).

    Example:
        >>> import numpy as np
        >>> k = np.array([1] * 500 + [0] * 24, bool); f = k.copy(); f[:6] = False; f[-2:] = True
        >>> [round(v, 2) for v in paired_drop_interval(k, f)]
        [0.76, -0.36, 1.88]
    """
    k, f = np.asarray(keras_correct, bool), np.asarray(file_correct, bool)
    n = int(k.size)
    b, c = int(np.sum(k & ~f)), int(np.sum(~k & f))
    drop = (b - c) / max(n, 1)
    bs, cs, ns = b + 0.5, c + 0.5, n + 1.0
    centre = (bs - cs) / ns
    half = z * float(np.sqrt(max((bs + cs) / ns - centre ** 2, 0.0) / ns))
    return 100.0 * drop, 100.0 * (centre - half), 100.0 * (centre + half)


def examples_needed(keras_correct, file_correct, limit_points: float, *, z: float = Z95) -> int | None:
    """How many examples (at the observed disagreement rate and drop) would put the whole 95 % interval
    on one side of ``limit_points``; None when the drop sits on the limit (no size decides it)."""
    k, f = np.asarray(keras_correct, bool), np.asarray(file_correct, bool)
    n = max(int(k.size), 1)
    drop = (np.sum(k & ~f) - np.sum(~k & f)) / n
    discordant = float(np.sum(k != f)) / n
    gap = abs(float(limit_points) / 100.0 - drop)
    if gap < 1e-9:
        return None
    # half width z * sqrt(p / n) at disagreement rate p; with no disagreement the smoothed width is z / n
    return int(np.ceil(max(z * z * max(discordant - drop ** 2, 0.0) / gap ** 2, z / gap)))


def target_examples(target: float) -> int:
    """Fewest examples on which an agreement ``target`` is judged: ``1 / (1 - target)`` (50 for 98 %). On
    fewer, a single disagreement already misses it, so the target would ask for 100 % agreement.

    Example:
        >>> from tfxfer.export.gate import INT8_AGREEMENT_TARGET
        >>> target_examples(INT8_AGREEMENT_TARGET)
        50
    """
    return int(np.ceil(1.0 / max(1.0 - float(target), 1e-9) - 1e-9))
