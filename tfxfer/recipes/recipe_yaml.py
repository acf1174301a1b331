"""Reading a recipe safely: bytes -> text -> a bounded mapping, with ``--set`` overrides applied to it.

The YAML is read with a SafeLoader that refuses duplicate keys. A recipe is at most
`MAX_RECIPE_BYTES`, nested at most `MAX_DEPTH` levels and holds at most `MAX_VALUES` values once
YAML aliases are expanded; its bytes are UTF-8, or UTF-8/16/32 behind a byte-order mark. Overrides
are checked against the key paths of `tfxfer.recipes.config.RunConfig` before they are applied;
`tfxfer.recipes.config_loader.load_config` turns the result into a `RunConfig`.

Example:
    >>> apply_overrides(parse_yaml("data: {source: animal_mnist}"), ["train.epochs=3"])
    {'data': {'source': 'animal_mnist'}, 'train': {'epochs': 3}}
    >>> parse_yaml("seed: 1\\nseed: 2")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: duplicate key `seed` (line 2)
"""

from __future__ import annotations

import codecs
import copy
import os
import types
import typing

import yaml

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.config import RunConfig
from tfxfer.recipes.schema import schema_path


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one).

    Merge keys (``<<: *defaults``) work as in ``yaml.safe_load``: the merged keys come first and a key
    written in the mapping itself overrides them; a key written twice is still refused.
    """


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _merged_size(loader, node, sizes: dict) -> int:
    """How many keys mapping ``node`` holds once its merge keys are expanded (memoised in ``sizes``).

    Refuses a key written twice in ``node`` or in a mapping it merges, a mapping that merges itself,
    and more than `MAX_VALUES` keys: a chain of merges doubles at each step in PyYAML before 6.0.2.
    """
    if id(node) in sizes:
        if sizes[id(node)] is None:
            raise ConfigError(f"a YAML merge key (<<) merges a mapping into itself (line {node.start_mark.line + 1})")
        return sizes[id(node)]
    sizes[id(node)] = None
    size, seen = 0, set()
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            size += sum(_merged_size(loader, s, sizes) for s in sources if isinstance(s, yaml.MappingNode))
        else:
            size += 1
            key = loader.construct_object(key_node)
            try:
                if key in seen:
                    raise ConfigError(f"duplicate key `{key}` (line {key_node.start_mark.line + 1})")
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's construct_mapping says so
                pass
        if size > MAX_VALUES:
            raise ConfigError(f"a mapping holds more than {MAX_VALUES} keys once YAML merge keys (<<) are expanded "
                              f"(line {node.start_mark.line + 1})")
    sizes[id(node)] = size
    return size


def _construct_mapping(loader, node, deep=False):
    _merged_size(loader, node, loader.__dict__.setdefault("_merged_sizes", {}))
    loader.flatten_mapping(node)  # merged keys first, so the mapping's own keys override them
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

#: Limits on a recipe: its size in bytes, its nesting depth, and the number of values it holds once
#: YAML aliases are expanded (a few hundred bytes of aliases can stand for billions of values).
MAX_RECIPE_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_VALUES = 10_000

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def decode_recipe(data: bytes, *, where: str = "recipe") -> str:
    """Recipe bytes -> text: UTF-8, or any UTF-8/16/32 text that starts with a byte-order mark.

    Example:
        >>> decode_recipe("seed: 1".encode("utf-16"))
        'seed: 1'
    """
    if len(data) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{where} is {len(data)} bytes; a recipe holds at most {MAX_RECIPE_BYTES} bytes")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{where} starts with a {encoding} byte-order mark but is not valid {encoding} "
                                  f"at byte {exc.start + len(bom)}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start}: {bounded_repr(data[exc.start:exc.start + 4])}) "
                          "and has no byte-order mark; save it as UTF-8") from None


def check_shape(raw, *, where: str = "recipe") -> None:
    """Refuse values nested deeper than `MAX_DEPTH` or holding more than `MAX_VALUES` values.

    The walk stops as soon as a limit is passed, so an alias bomb or a recursive alias costs at
    most `MAX_VALUES` steps.
    """
    budget = [MAX_VALUES]

    def walk(value, depth):
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where} is nested more than {MAX_DEPTH} levels deep (a recursive YAML alias?)")
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"{where} holds more than {MAX_VALUES} values once YAML aliases are expanded "
                              "(an alias bomb?)")
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1)
                walk(v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, depth + 1)

    walk(raw, 0)


def parse_yaml(text: str, *, where: str = "recipe") -> dict:
    """YAML text -> dict (safe loader, duplicate keys rejected, size and nesting bounded)."""
    if len(text) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{where} holds {len(text)} characters; a recipe holds at most {MAX_RECIPE_BYTES}")
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at}: {bounded_repr(problem)[1:-1]}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to read") from None
    if raw is None:
        return {}
    check_shape(raw, where=where)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of sections (data:, model:, ...). "
                          f"Received: {bounded_repr(raw)}")
    return raw


#: How YAML writes null: what a ``--set`` value of a ``str | None`` key must be to mean None.
_NULLS = ("", "~", "null", "Null", "NULL")


def _takes_text(hint) -> bool:
    """True for ``str`` and ``str | None``: a ``--set`` value for such a key is kept as typed."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint)) == {str, type(None)}
    return hint is str


def parse_override(item: str, *, schema=None) -> tuple[list, object]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3).

    With ``schema`` (a dataclass such as `RunConfig`) the key path must exist in it, the keys of an
    integer-keyed mapping become integers (``train.stages.0``) and the value of a text key is kept as
    typed (``data.source=photos #2``, ``=2024-05-01``, ``=on``, ``=null`` are folder names; a
    ``str | None`` key is None for ``null``, ``~`` or nothing). Every other value is read as YAML
    (``3``, ``1e-3``, ``null``, ``[96, 96]``, ``{0: 2}``). Errors name the ``--set`` item.

    Example:
        >>> from tfxfer.recipes.config import RunConfig
        >>> parse_override("data.source=photos #2", schema=RunConfig)
        (['data', 'source'], 'photos #2')
        >>> parse_override("train.stages.0=5", schema=RunConfig)
        (['train', 'stages', 0], 5)
    """
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set expects key.sub=value. Received: {bounded_repr(item)}")
    key, _, text = item.partition("=")
    if len(key) > 200 or key.count(".") > MAX_DEPTH:
        raise ConfigError(f"--set: the key path is too long (at most 200 characters, {MAX_DEPTH} levels). "
                          f"Received: {bounded_repr(key)}")
    keys = [k.strip() for k in key.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set expects key.sub=value. Received: {bounded_repr(item)}")
    where = f"--set {bounded_repr(item)[1:-1]}"
    if len(text) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{where}: the value holds {len(text)} characters (at most {MAX_RECIPE_BYTES})")
    hint = None
    if schema is not None:
        keys, hint = schema_path(schema, keys, where=f"{where}: ")
    if _takes_text(hint):
        return keys, None if hint is not str and text.strip() in _NULLS else text
    try:
        value = yaml.load(text, Loader=_StrictLoader) if text.strip() else None  # noqa: S506
    except yaml.YAMLError:
        value = text
    except ConfigError as exc:  # a duplicate key in a {...} value
        raise ConfigError(f"{where}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: the value is nested too deeply") from None
    check_shape(value, where=where)
    return keys, value


def apply_overrides(raw: dict, overrides, *, schema=RunConfig) -> dict:
    """Apply ``--set`` items to the parsed recipe (each checked against ``schema`` first; `parse_override`)."""
    out = copy.deepcopy(raw)
    for item in overrides or ():
        keys, value = parse_override(item, schema=schema)
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {item}: `{'.'.join(map(str, keys[:i + 1]))}` is not a section")
            node = child
        node[keys[-1]] = value
    return out


def read_recipe_file(path, *, where: str | None = None) -> str:
    """The text of recipe file ``path`` (a regular file of at most `MAX_RECIPE_BYTES`, any BOM).

    Raises:
        ConfigError: missing, not a regular file (a FIFO would block), too large, or not text.
    """
    import stat

    path = os.fspath(path)
    where = where or path
    try:
        st = os.stat(path)
    except OSError:
        raise ConfigError(f"recipe file not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"recipe file not found: {path} (it is not a regular file)")
    with open(path, "rb") as f:
        data = f.read(MAX_RECIPE_BYTES + 1)
    return decode_recipe(data, where=where)


__all__ = ["apply_overrides", "check_shape", "decode_recipe", "parse_override", "parse_yaml", "read_recipe_file"]
