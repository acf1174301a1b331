"""What every ``tfxfer`` command shares: exit codes, verbosity flags, printing, quiet TensorFlow
start-up, and the one-line error (with its exit code) that `tfxfer.cli.main` prints.

Command modules import this module and nothing else from `tfxfer.cli`.

Example:
    >>> import argparse
    >>> from tfxfer.cli.common import EXIT_USAGE, exit_code, verbosity
    >>> verbosity(argparse.Namespace(quiet=True))
    0
    >>> from tfxfer.errors import ConfigError
    >>> exit_code(ConfigError("bad recipe")) == EXIT_USAGE
    True
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError, GateError, TfxferError, UnknownNameError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def add_verbosity(parser) -> None:
    """``-q`` / ``-v`` on a command's parser (mutually exclusive)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the result lines")
    group.add_argument("-v", "--verbose", action="store_true", help="print details (fingerprints, full errors)")


def verbosity(args) -> int:
    """0 with ``-q``, 2 with ``-v``, else 1 (commands without the flags count as 1)."""
    return 0 if getattr(args, "quiet", False) else 2 if getattr(args, "verbose", False) else 1


def say(args, text: str) -> None:
    """Print a progress line unless ``-q``."""
    if verbosity(args):
        print(text, flush=True)


def show(path: str) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


@contextlib.contextmanager
def quiet_native_logs(enabled: bool):
    """Silence TensorFlow's native start-up log lines on stderr (fd 2) while it is imported."""
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


def import_tensorflow(args) -> None:
    """Import TensorFlow and Keras now, with their start-up chatter hidden unless ``-v``.

    Commands call this only once they know they need TensorFlow, so ``tfxfer --help``, ``doctor``
    and the argument and recipe errors stay fast.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if verbosity(args) < 2 else "1")
    with quiet_native_logs(verbosity(args) < 2):
        import tensorflow  # noqa: F401
        import keras  # noqa: F401
    if verbosity(args) < 2:
        import absl.logging  # comes with TensorFlow: imported after it

        absl.logging.set_verbosity(absl.logging.ERROR)  # converter deprecation chatter


def exit_code(exc: BaseException) -> int:
    """The exit code for an error a command raised: 3 gate, 2 usage or recipe, else 1."""
    if isinstance(exc, GateError):
        return EXIT_GATE
    if isinstance(exc, (ConfigError, ArgumentError, ArgumentTypeError, UnknownNameError)):
        return EXIT_USAGE
    return EXIT_FAILURE


def os_error_text(exc: OSError) -> str:
    """An OSError as one sentence that says what to do (full disk, read-only file system)."""
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device{where}. Files already written are intact (tfxfer writes "
                "atomically); free some space and run the same command with --resume")
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}; choose another output folder (--out)"
    return str(exc).strip() or type(exc).__name__


def report_error(exc: TfxferError | OSError, *, level: int) -> int:
    """Print ``exc`` as one ``tfxfer: error:`` line on stderr (all of it with ``-v``); return its exit code."""
    text = os_error_text(exc) if isinstance(exc, OSError) and not isinstance(exc, TfxferError) else \
        (str(exc).strip() or type(exc).__name__)
    lines = text.splitlines()
    more = " (run with -v for details)" if level < 2 and len(lines) > 1 else ""
    print(f"tfxfer: error: {text if level >= 2 else lines[0]}{more}", file=sys.stderr)
    return exit_code(exc)


def one_line_warnings(message, category, filename, lineno, file=None, line=None):
    """A `warnings.showwarning` replacement: the first line of the message, no source line."""
    print(f"tfxfer: warning: {str(message).splitlines()[0]}", file=sys.stderr)
