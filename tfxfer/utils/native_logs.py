"""Hide the native (C++) log lines that TensorFlow, absl, CUDA and LiteRT write straight to file
descriptor 2, which ``TF_CPP_MIN_LOG_LEVEL`` does not reach: "All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on", "Could not find cuda drivers",
"failed call to cuInit", "Created TensorFlow Lite XNNPACK delegate for CPU".

Wrap only the calls that produce them (importing TensorFlow, the first device query, creating a
LiteRT interpreter): everything written to stderr inside the block is dropped, Python's included.

Example:
    >>> import os
    >>> with quiet_native_logs():
    ...     _ = os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_logs(enabled: bool = True):
    """Point file descriptor 2 at the null device inside the block (a no-op when not ``enabled``)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
