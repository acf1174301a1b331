"""Strict conversion of parsed YAML into frozen dataclasses.

`from_mapping(cls, raw, path=...)` walks a dataclass's fields, converting each value to the field's
annotated type. Anything it does not recognise is a `ConfigError` that names the full key path
(``train.head_epochs``) and, for unknown keys, the closest valid key. Supported annotations:
``bool``, ``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``,
``dict[K, V]`` and nested dataclasses.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Train:
    ...     epochs: int = 3
    ...     base_lr: float = 1e-3
    >>> from_mapping(Train, {"epochs": 5}, path="train")
    Train(epochs=5, base_lr=0.001)
    >>> from_mapping(Train, {"epoch": 5}, path="train")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: unknown key `train.epoch`. Did you mean `train.epochs`?
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing

from tfxfer.errors import ConfigError, bounded_repr, suggest
from tfxfer.utils.validate import is_int, is_number

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def closest(received: str, known) -> str | None:
    """The closest of ``known`` to ``received`` (`tfxfer.errors.suggest`, as every did-you-mean), or None."""
    matches = suggest(received, known)
    return matches[0] if matches else None


def unknown_key_error(path: str, key: str, known, *, where: str = "") -> ConfigError:
    """A `ConfigError` for an unknown key, suggesting the closest valid one."""
    key = bounded_repr(key) if not isinstance(key, str) or len(key) > 80 else key
    full = f"{path}.{key}" if path else key
    message = f"{where}unknown key `{full}`."
    match = closest(key[:80], known)
    if match is not None:
        message += f" Did you mean `{path + '.' if path else ''}{match}`?"
    else:
        message += " Valid keys here: " + ", ".join(sorted(known))
    return ConfigError(message)


def describe_type(hint) -> str:
    """A human name for a type annotation ("an integer", "a list of strings", ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(describe_type(a) for a in inner) + " (or null)"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe_type(args[0]).split(' ', 1)[-1]}s"
        return f"a list of {len(args)} values"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping (section)"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _wrong_type(path: str, value, hint) -> ConfigError:
    return ConfigError(f"`{path}` must be {describe_type(hint)}. Received: {bounded_repr(value)} "
                       f"(of type {type(value).__name__})")


def _short(key) -> str:
    """A mapping key as shown in a key path (bounded: a key can be any YAML scalar)."""
    return key if isinstance(key, str) and len(key) <= 80 else bounded_repr(key)


def convert(value, hint, path: str):
    """Convert one parsed YAML value to ``hint``; raises `ConfigError` naming ``path``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if value is None:
            raise _wrong_type(path, value, hint)
        errors = []
        for option in inner:
            try:
                return convert(value, option, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _wrong_type(path, value, hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, path=path)
    if origin is tuple:
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis and value is not None and not isinstance(value, dict):
                value = [value]  # a single value where a list is expected
            else:
                raise _wrong_type(path, value, hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _wrong_type(path, value, hint)
        return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong_type(path, value, hint)
        key_t, value_t = args
        return types.MappingProxyType(
            {convert(k, key_t, f"{path}.{_short(k)}"): convert(v, value_t, f"{path}.{_short(k)}")
             for k, v in value.items()})
    if hint is bool:
        if not isinstance(value, bool):
            raise _wrong_type(path, value, hint)
        return value
    if hint is int:
        if not is_int(value):
            raise _wrong_type(path, value, hint)
        return int(value)
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _wrong_type(path, value, hint) from None
        if not is_number(value):
            raise _wrong_type(path, value, hint)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _wrong_type(path, value, hint)
        return value
    raise TypeError(f"unsupported annotation {hint!r} at {path}")  # a bug in the schema, not user input


def field_hints(cls) -> dict:
    """``{field name: resolved type}`` of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def from_mapping(cls, raw, *, path: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise `ConfigError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"`{path or 'the recipe'}` must be a mapping of keys to values. "
                          f"Received: {bounded_repr(raw)}")
    hints = field_hints(cls)
    for key in raw:
        if key not in hints:
            raise unknown_key_error(path, key, hints)
    values = {}
    for name, hint in hints.items():
        if name in raw:
            values[name] = convert(raw[name], hint, f"{path}.{name}" if path else name)
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in values and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            full = f"{path}.{missing[0]}" if path else missing[0]
            raise ConfigError(f"missing required key `{full}`") from None
        raise ConfigError(str(exc)) from None


def to_plain(value):
    """Dataclasses / mapping proxies / tuples -> plain dicts and lists (for YAML and JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dict, types.MappingProxyType)):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def schema_at(cls, keys: list[str], *, where: str = ""):
    """The annotation reached by following ``keys`` from dataclass ``cls`` (for ``--set`` paths).

    Dict-typed fields accept any key below them. Raises `ConfigError` with a suggestion for an
    unknown key.
    """
    return schema_path(cls, keys, where=where)[1]


def schema_path(cls, keys: list[str], *, where: str = "") -> tuple[list, object]:
    """``(keys, annotation)``: `schema_at`'s annotation, and ``keys`` with the keys of ``dict[int, ...]``
    fields that look like integers made integers (a ``--set`` path is text: ``train.stages.0``).

    Example:
        >>> from tfxfer.recipes.config import RunConfig
        >>> schema_path(RunConfig, ["train", "stages", "0"])
        (['train', 'stages', 0], <class 'int'>)
    """
    hint, done = cls, []
    for key in keys:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
            origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint):
            known = field_hints(hint)
            if key not in known:
                raise unknown_key_error(".".join(map(str, done)), key, known, where=where)
            hint = known[key]
        elif origin is dict:
            key_type, hint = typing.get_args(hint)
            if key_type is int and isinstance(key, str) and _INT_TEXT.fullmatch(key):
                key = int(key)
        else:
            raise ConfigError(f"{where}`{'.'.join(map(str, done))}` is a single value, it has no key `{key}`")
        done.append(key)
    return done, hint
