"""Choose before you train: transferability scores, backbone ranking, a transfer probe and L2-SP.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import logme
    >>> x = np.random.default_rng(0).normal(size=(64, 4))
    >>> logme(x, (x[:, 0] > 0).astype(int)) > -1.0
    True
"""

from tfxfer.transfer.logme import logme, logme_per_target
from tfxfer.transfer.regularizers import L2SP, attach_l2sp, l2sp_drift
from tfxfer.transfer.scores import hscore, leep, nce

__all__ = ["L2SP", "attach_l2sp", "hscore", "l2sp_drift", "leep", "logme", "logme_per_target", "nce"]
