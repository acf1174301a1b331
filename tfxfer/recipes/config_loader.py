"""Loading a recipe: strict YAML -> a frozen, checked `RunConfig`, with ``--set`` overrides.

Every key is optional except that ``data.source`` must name a packaged data set, a folder or a
table (the sections: `tfxfer.recipes.config`). Unknown keys, wrong types and bad choices are
`ConfigError` s that name the key path and suggest the closest valid key.

Example:
    >>> cfg = load_config(text="data: {source: animal_mnist}\\ntrain: {epochs: 1}",
    ...                   overrides=["model.input_size=[32, 32]", "model.weights=null"])
    >>> cfg.data.source, cfg.train.epochs, cfg.model.input_size, cfg.model.weights
    ('animal_mnist', 1, (32, 32), None)
    >>> load_config(text="train: {head_epochz: 2}")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: unknown key `train.head_epochz`. Did you mean `train.head_epochs`?
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.causal_lm_config import check_causal_lm_keys
from tfxfer.recipes.config import RunConfig
from tfxfer.recipes.config_checks import validate
from tfxfer.recipes.recipe_yaml import apply_overrides, parse_yaml, read_recipe_file
from tfxfer.recipes.schema import convert, from_mapping, to_plain


def load_config(path=None, *, text: str | None = None, overrides=()) -> RunConfig:
    """Read a recipe (file ``path`` or YAML ``text``), apply ``--set`` overrides, validate.

    Args:
        path: a YAML recipe file.
        text: YAML text instead of a file.
        overrides: ``["key.sub=value", ...]``; values are YAML (``3``, ``1e-3``, ``null``, ``[96, 96]``),
            except that a text key keeps the text as typed (`tfxfer.recipes.recipe_yaml.parse_override`).

    Returns:
        A frozen `RunConfig`; ``name`` defaults to the file name without extension, made a valid
        run name (`name_from_file`).

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key (with the closest valid key), wrong
            type, bad choice, or a bad override path. An error about a key set by ``--set`` names
            that ``--set`` item, any other one the recipe file.
    """
    where = "recipe"
    if path is not None:
        path = os.fspath(path)
        where = path
        text = read_recipe_file(path)
    raw = parse_yaml(text or "", where=where)
    raw = apply_overrides(raw, overrides)
    if "name" not in raw and path is not None:
        raw["name"] = name_from_file(path)
    try:
        check_causal_lm_keys(raw)  # keys a causal-LM recipe would ignore, even set to their defaults
        return validate(from_mapping(RunConfig, raw))
    except ConfigError as exc:
        item = _override_behind(str(exc), overrides)
        if item is not None:
            raise ConfigError(f"--set {bounded_repr(item)[1:-1]}: {exc}") from None
        if path is not None:
            raise ConfigError(f"{os.path.basename(path)}: {exc}") from None
        raise


_KEY_PATH = re.compile(r"`([A-Za-z_][A-Za-z0-9_.\[\]]*)`")


def _override_behind(message: str, overrides) -> str | None:
    """The last ``--set`` item whose key path is, contains or lies inside a key path that ``message``
    names in backquotes (the error is then about a value typed on the command line, not in the file)."""
    named = {re.sub(r"\[\d+\]", "", p) for p in _KEY_PATH.findall(message)}
    for item in reversed(list(overrides or ())):
        key = ".".join(k.strip() for k in str(item).partition("=")[0].strip().split("."))
        if any(p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in named):
            return item
    return None


def name_from_file(path) -> str:
    """The run name of a recipe without ``name:``: its file name without extension, made a valid name
    (accents dropped, other characters outside letters, digits, '.', '_' and '-' made '_', no leading
    '.', '_' or '-', at most 64 characters).

    Raises:
        ConfigError: nothing of the file name is left (``.yaml``, ``写真.yaml``); the message says to
            add ``name:`` or pass ``--set name=...``.

    Example:
        >>> name_from_file("recipes/my recipe (été).yaml")
        'my_recipe_ete_'
    """
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    plain = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", plain).lstrip("._-")[:64]
    if not name:
        raise ConfigError(f"{os.path.basename(os.fspath(path))}: the recipe has no `name:`, and the run name is taken "
                          f"from its file name ({bounded_repr(stem)}), which holds no ASCII letter or digit; add "
                          "`name: ...` to the recipe or pass --set name=...")
    return name


def replace(cfg: RunConfig, **sections) -> RunConfig:
    """A copy of ``cfg`` with sections replaced, e.g. ``replace(cfg, train={"epochs": 1})``."""
    values = {}
    for name, value in sections.items():
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            merged = {**to_plain(current), **value}
            values[name] = convert(merged, type(current), name)
        else:
            values[name] = value
    return validate(dataclasses.replace(cfg, **values))


__all__ = ["load_config", "name_from_file", "replace"]
