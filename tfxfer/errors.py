"""Typed errors raised by tfxfer.

Every error names the argument that was wrong and what was received, so a user can fix the call
without reading tfxfer's source. They subclass the built-in exception a Python user would expect
(`ValueError`, `TypeError`, `ImportError`, ...), so ``except ValueError`` keeps working.

Example:
    >>> from tfxfer.errors import ArgumentError
    >>> try:
    ...     raise ArgumentError("num_classes", 0, "must be >= 1")
    ... except ValueError as e:
    ...     print(e)
    `num_classes` must be >= 1. Received: num_classes=0
"""

from __future__ import annotations

import difflib
import reprlib
from typing import Iterable

_REPR = reprlib.Repr()
_REPR.maxstring = 160
_REPR.maxother = 160
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


#: The longest excerpt `bounded_repr` returns (characters).
MAX_REPR = 400


def bounded_repr(value) -> str:
    """``repr(value)`` cut to at most `MAX_REPR` characters and three levels of nesting.

    Error messages show what was received without expanding a huge or recursive value (a YAML
    alias bomb, a whole array).

    Example:
        >>> len(bounded_repr([["x" * 1000] * 100] * 100)) <= MAX_REPR
        True
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 4] + " ..."


class TfxferError(Exception):
    """Base class of every error tfxfer raises on purpose."""


class ArgumentError(TfxferError, ValueError):
    """An argument has a value tfxfer cannot use."""

    def __init__(self, name: str, received, requirement: str, *, hint: str | None = None):
        self.name = name
        self.received = received
        message = f"`{name}` {requirement}. Received: {name}={bounded_repr(received)}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class ArgumentTypeError(TfxferError, TypeError):
    """An argument has the wrong type."""

    def __init__(self, name: str, received, expected: str):
        self.name = name
        self.received = received
        super().__init__(
            f"`{name}` must be {expected}. Received: {name}={bounded_repr(received)} "
            f"(of type {type(received).__name__})"
        )


class UnknownNameError(TfxferError, KeyError):
    """A name (backbone, group, data set, config key...) is not known; lists close matches."""

    def __init__(self, kind: str, received: str, known: Iterable[str]):
        known = sorted(known)
        self.kind = kind
        self.received = received
        self.close_matches = difflib.get_close_matches(str(received), known, n=3, cutoff=0.5)
        message = f"Unknown {kind} {received!r}."
        if self.close_matches:
            message += " Did you mean: " + ", ".join(repr(m) for m in self.close_matches) + "?"
        else:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            message += f" Known: {shown}"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class DataError(TfxferError, ValueError):
    """Training or evaluation data cannot be used (empty, single class, mismatched labels...)."""


class ModelError(TfxferError, ValueError):
    """A model does not have the structure a tfxfer function needs."""


class ExportError(TfxferError, RuntimeError):
    """An export could not be produced (unsupported ops, conversion failure, I/O failure)."""


class GateError(ExportError):
    """An exported model failed its verification gate. ``report`` holds the per-variant results."""

    def __init__(self, message: str, report=None):
        self.report = report
        super().__init__(message)


class ConfigError(TfxferError, ValueError):
    """A recipe or configuration file is invalid."""


class WeightsUnavailableError(TfxferError, OSError):
    """Pretrained weights could not be downloaded (no network, a failed fetch); the message says how
    to supply them from a local file instead."""

    def __init__(self, backbone: str, cause: BaseException):
        self.backbone = backbone
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(
            f"ImageNet weights for backbone {backbone!r} could not be downloaded ({reason[:300]}). Offline, pass "
            "the weights file as weights=PATH (tfxfer rank: --weights-dir DIR), or use weights=None for a "
            "random initialisation"
        )


class MissingDependencyError(TfxferError, ImportError):
    """An optional dependency is missing; the message carries the exact install command."""

    def __init__(self, package: str, install: str, purpose: str = ""):
        self.package = package
        self.install = install
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"`{package}` is not installed{what}. Install it with: {install}")


class UnsafeFileError(TfxferError, ValueError):
    """A file would execute code or write outside its directory if loaded as asked."""


class TrainingDivergedError(TfxferError, FloatingPointError):
    """The loss (or a weight) became NaN or infinite during training.

    Attributes ``epoch``, ``batch``, ``value`` and ``checkpoint`` (the last good checkpoint kept,
    or None) say where it happened and what to resume from.
    """

    def __init__(self, message: str, *, epoch=None, batch=None, value=None, checkpoint=None):
        self.epoch = epoch
        self.batch = batch
        self.value = value
        self.checkpoint = checkpoint
        super().__init__(message)


class CheckpointError(TfxferError, OSError):
    """A checkpoint could not be written (full disk, permissions); the previous one is intact."""


class LockedError(TfxferError, RuntimeError):
    """A folder is locked by another live process (a second ``tfxfer run`` on the same run folder).

    ``holder`` is what the lock file says about that process (pid, host, start time, command).
    """

    def __init__(self, message: str, *, holder=None):
        self.holder = holder
        super().__init__(message)


def suggest(received: str, known: Iterable[str]) -> list[str]:
    """Close matches of ``received`` among ``known`` (for error messages)."""
    return difflib.get_close_matches(str(received), sorted(known), n=3, cutoff=0.5)
