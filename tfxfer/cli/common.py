"""What every ``tfxfer`` command shares: exit codes, the verbosity and ``--json`` flags, printing,
quiet TensorFlow start-up, checks that run before TensorFlow is imported, and the one-line error
(with its exit code) that `tfxfer.cli.main` prints.

Command modules import this module (and `tfxfer.cli.json_output`) and nothing else from `tfxfer.cli`,
besides helpers that serve one command only (`tfxfer.cli.audit` for ``evaluate --groups / --target``).

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

import errno
import os
import sys

from tfxfer.cli.json_output import document, dumps
from tfxfer.errors import (ArgumentError, ArgumentTypeError, ConfigError, GateError, TfxferError, UnknownNameError,
                           suggest)
from tfxfer.utils.native_logs import quiet_native_logs

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: ``tfxfer run`` / ``evaluate`` finished, but the model is no better than chance (`tfxfer.metrics.chance_check`).
EXIT_CHANCE = 4

EXIT_CODES_HELP = ("exit codes: 0 success; 1 run-time failure (bad data, failed conversion, full disk); "
                   "2 usage or recipe error (unknown command, flag, name or key; missing file); "
                   "3 the verification gate failed; 4 the model is no better than chance (run / evaluate: accuracy "
                   "at or below the majority-class rate, or one class predicted for every example; files and report "
                   "are written; --allow-chance exits 0); 130 interrupted (Ctrl-C)")


class UsageError(TfxferError, ValueError):
    """The command line itself is wrong: an unknown command or flag, a missing or malformed argument."""


def add_verbosity(parser) -> None:
    """``-q`` / ``-v`` on a command's parser (mutually exclusive)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the result lines")
    group.add_argument("-v", "--verbose", action="store_true", help="print details (fingerprints, full errors, "
                       "TensorFlow's start-up logs)")


def add_json(parser) -> None:
    """``--json`` on a command's parser: one JSON document on stdout (`tfxfer.cli.json_output`)."""
    parser.add_argument("--json", action="store_true", help="print one JSON document (schema tfxfer/1, also on "
                        "errors) on stdout; progress goes to stderr")


def verbosity(args) -> int:
    """0 with ``-q``, 2 with ``-v``, else 1 (commands without the flags count as 1)."""
    return 0 if getattr(args, "quiet", False) else 2 if getattr(args, "verbose", False) else 1


def say(args, text: str) -> None:
    """Print a progress line unless ``-q`` (on stderr under ``--json``, where stdout is redirected)."""
    if verbosity(args):
        print(text, flush=True)


def show(path: str) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def emit_json(args, *, exit_code: int = EXIT_OK, error=None, **fields) -> None:
    """Print the command's ``--json`` document (`tfxfer.cli.json_output`) on the real stdout."""
    stream = getattr(args, "json_stream", None) or sys.stdout
    print(dumps(document(args.command, exit_code=exit_code, error=error, **fields)), file=stream, flush=True)


def add_allow_chance(parser) -> None:
    """``--allow-chance`` on ``run`` / ``evaluate``: exit 0 for a chance-level model (smoke tests)."""
    parser.add_argument("--allow-chance", action="store_true", help="exit 0 even when the model is no better than "
                        f"chance (default: exit {EXIT_CHANCE}); the FLAGGED line, the --json `chance` field and the "
                        "report's warning stay. For smoke tests with random weights (model.weights=null)")


def chance_exit(args, check) -> int:
    """`EXIT_CHANCE` for a flagged `tfxfer.metrics.chance_check` result unless ``--allow-chance``."""
    flagged = bool(check and check.get("flagged"))
    return EXIT_CHANCE if flagged and not getattr(args, "allow_chance", False) else EXIT_OK


def chance_lines(check, *, allowed: bool = False) -> list[str]:
    """The lines ``tfxfer run`` and ``evaluate`` print for a `tfxfer.metrics.chance_check` result
    (none when it is not flagged).

    Example:
        >>> from tfxfer.metrics import chance_check
        >>> first, second = chance_lines(chance_check([[3, 0], [3, 0]], ["a", "b"]))
        >>> print(first[:60])
        FLAGGED: no better than chance: accuracy 0.5000 is at or bel
        >>> second.startswith("  (exit code 4; rule: flagged when accuracy is at or below")
        True
    """
    if not check or not check.get("flagged"):
        return []
    code = f"exit code {EXIT_OK}: --allow-chance" if allowed else f"exit code {EXIT_CHANCE}"
    return [f"FLAGGED: no better than chance: {'; '.join(check['reasons'])}", f"  ({code}; rule: {check['rule']})"]


def chance_error(check, *, allowed: bool = False) -> dict | None:
    """The ``--json`` error object of a flagged `tfxfer.metrics.chance_check` result, else None
    (None too with ``--allow-chance``: the document's ``chance`` field still says it)."""
    if not check or not check.get("flagged") or allowed:
        return None
    return {"type": "ChanceLevelModel", "message": "no better than chance: " + "; ".join(check["reasons"])}


def import_tensorflow(args) -> None:
    """Import TensorFlow and Keras and query the devices now, with their native start-up chatter
    (absl, oneDNN, CUDA) hidden unless ``-v``.

    Commands call this only once they know they need TensorFlow, so ``tfxfer --help``, ``datasets``,
    ``backbones``, ``doctor`` and the argument, path and recipe errors stay fast.
    """
    quiet = verbosity(args) < 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if quiet else "1")
    with quiet_native_logs(quiet):
        import tensorflow as tf
        import keras  # noqa: F401

        tf.config.list_physical_devices()  # device discovery logs ("failed call to cuInit") happen here
    if quiet:
        import absl.logging  # comes with TensorFlow: imported after it

        absl.logging.set_verbosity(absl.logging.ERROR)  # converter deprecation chatter


# -- checks that run before TensorFlow is imported -------------------------------------------------
def check_model_path(path: str) -> str:
    """``path`` as `tfxfer.recipes.inference.open_model` will read it: a ``.keras`` / ``.tflite``
    file or a run directory; raises `ArgumentError` (exit 2) before anything heavy is imported."""
    from tfxfer.recipes.inference import resolve_model_path  # numpy only

    return resolve_model_path(path)


def check_data_argument(data: str, *, name: str = "data") -> None:
    """Fail fast (exit 2) when ``data`` is neither a packaged data set nor an existing path: a
    misspelt name gets close matches, a missing path says so."""
    from tfxfer.recipes.catalog import DATASETS, dataset_key, looks_like_path

    if dataset_key(data) is not None or os.path.exists(os.path.expanduser(data)):
        return
    if looks_like_path(data):
        raise ArgumentError(name, data, "must be an existing folder or table file, or a packaged data set name "
                            "(tfxfer datasets)")
    if suggest(str(data).strip().lower().replace("-", "_"), DATASETS):
        raise UnknownNameError("data set", data, DATASETS)
    raise ArgumentError(name, data, "must be a packaged data set name, a folder or a CSV table",
                        hint=f"Packaged data sets: {', '.join(DATASETS)}")


def check_recipe_names(cfg) -> None:
    """A loaded recipe's data source and backbone names, from the TensorFlow-free catalog (the run
    checks them again with the real catalogs); raises `ConfigError` with close matches."""
    from tfxfer.recipes import catalog

    catalog.check_source(cfg.data.source, task="text_classification" if cfg.task == "causal_lm" else cfg.task)
    if cfg.task != "image_classification":
        return
    for key, name in (("model.backbone", cfg.model.backbone),
                      ("distill.teacher", cfg.distill.teacher if cfg.distill.enabled else None)):
        if name is None:
            continue
        try:
            catalog.check_backbone(name)
        except UnknownNameError as exc:
            raise ConfigError(f"`{key}`: {exc}") from None


# -- errors -----------------------------------------------------------------------------------------
def exit_code(exc: BaseException) -> int:
    """The exit code for an error a command raised: 3 gate, 2 usage or recipe, 130 Ctrl-C, else 1."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, GateError):
        return EXIT_GATE
    if isinstance(exc, (ConfigError, ArgumentError, ArgumentTypeError, UnknownNameError, UsageError)):
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


def error_text(exc: BaseException) -> str:
    """The message of an error as the CLI shows it."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError) and not isinstance(exc, TfxferError):
        return os_error_text(exc)
    return str(exc).strip() or type(exc).__name__


def report_error(exc: BaseException, *, level: int, command: str = "tfxfer", json_stream=None) -> int:
    """Print ``exc`` as one ``tfxfer: error:`` line on stderr (all of it with ``-v``), and as the
    ``--json`` error document on ``json_stream`` when given; return its exit code."""
    code = exit_code(exc)
    text = error_text(exc)
    lines = text.splitlines()
    more = " (run with -v for details)" if level < 2 and len(lines) > 1 else ""
    print(f"tfxfer: error: {text if level >= 2 else lines[0]}{more}", file=sys.stderr, flush=True)
    if json_stream is not None:
        error = {"type": type(exc).__name__, "message": text}
        print(dumps(document(command, exit_code=code, error=error)), file=json_stream, flush=True)
    return code


def one_line_warnings(message, category, filename, lineno, file=None, line=None):
    """A `warnings.showwarning` replacement: the first line of the message, no source line."""
    print(f"tfxfer: warning: {str(message).splitlines()[0]}", file=sys.stderr)
