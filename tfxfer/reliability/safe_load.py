"""Loading files from other people without running their code.

* `load_model`: THE way tfxfer loads a ``.keras`` file. It first imports every module in
  `SERIALIZABLE_MODULES` (`register_serializables`), so any tfxfer class a model holds (Preprocess,
  optimizers, schedules, text layers, ...) is registered with Keras, then loads in Keras safe mode.
  Before Keras sees the file, it is checked
  as a zip (no absolute or ``..`` member names, a readable ``config.json``) and its config is scanned
  for Lambda layers and serialized Python functions (``__lambda__``), which hold Python bytecode that
  runs on load. Such files are refused with the layer names and the explicit opt-in
  ``safe_mode=False`` ("I trust this file").
* `scan_keras_file`: the same checks, as a report.
* `load_yaml`: YAML with ``yaml.SafeLoader`` only (no ``!!python/...`` tags; a tag is an error).

The callbacks in the list (checkpoint, divergence, shuffle, ``recipes.training_log.LearningRateLog``)
are never inside a saved model (Keras does not store callbacks); they are listed because they
register with ``package="tfxfer"`` for their own config round trip.

Offline ``.pth`` weights are read by `tfxfer.backbones.pth_reader.read_pth`, whose restricted
unpickler refuses every global outside the tensor-rebuild allow-list (nothing in the file runs).

Example:
    >>> import keras, os, tempfile
    >>> from tfxfer.reliability import load_model
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    >>> load_model(path).output_shape
    (None, 1)
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import zipfile

from tfxfer._registration import SERIALIZABLE_MODULES, register_serializables
from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError, ModelError, UnsafeFileError

__all__ = ["SERIALIZABLE_MODULES", "KerasFileReport", "load_model", "load_yaml", "register_serializables",
           "scan_keras_file"]

MAX_CONFIG_BYTES = 64 * 2**20

#: `SERIALIZABLE_MODULES` and `register_serializables` live with the import-time registration
#: (``import tfxfer`` registers as soon as Keras is loaded); `load_model` calls it again, which is a no-op.
_UNSAFE_CLASSES = {"Lambda": "Lambda layer", "__lambda__": "serialized Python lambda"}


@dataclasses.dataclass
class KerasFileReport:
    """What `scan_keras_file` found: ``unsafe`` lists ``(where, what)`` pairs; ``modules`` the
    Python modules the config names."""

    path: str
    unsafe: list
    modules: list
    members: list

    @property
    def safe(self) -> bool:
        return not self.unsafe


def _walk(node, where, unsafe, modules):
    if isinstance(node, dict):
        cls = node.get("class_name")
        name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
        here = f"{where}/{name}" if name else where
        if isinstance(cls, str) and cls in _UNSAFE_CLASSES:
            unsafe.append((here, _UNSAFE_CLASSES[cls]))
        if node.get("function_type") == "lambda":
            unsafe.append((here, "serialized Python lambda"))
        module = node.get("module")
        if isinstance(module, str) and module not in modules:
            modules.append(module)
        for key, value in node.items():
            _walk(value, here if key in ("config", "layers") else f"{here}.{key}", unsafe, modules)
    elif isinstance(node, list):
        for value in node:
            _walk(value, where, unsafe, modules)


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError("path", path, "a file path (str or os.PathLike)")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ArgumentError("path", path, "must be a .keras file, not a folder",
                            hint="SavedModel folders are for serving: load them with tf.saved_model.load")
    if not os.path.isfile(path):
        raise ArgumentError("path", path, "must be an existing .keras file")
    if path.endswith(".weights.h5"):
        raise ArgumentError("path", path, "is a weights-only file",
                            hint="Build the model first, then call model.load_weights(path)")
    if not path.endswith(".keras"):
        raise ArgumentError("path", path, "must end with .keras (legacy .h5 / pickled models are not loaded)")
    return path


def scan_keras_file(path) -> KerasFileReport:
    """Check a ``.keras`` file without deserializing anything.

    Raises:
        ModelError: not a zip, truncated, or without a readable ``config.json``.
        UnsafeFileError: a member name is absolute or climbs out with ``..``.
    """
    path = _check_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            for member in members:
                norm = posixpath.normpath(member.replace("\\", "/"))
                if member.startswith(("/", "\\")) or norm.startswith("..") or ":" in member.split("/")[0]:
                    raise UnsafeFileError(f"{path}: archive member {member!r} would be written outside the "
                                          "extraction folder; refusing to load this file")
            if "config.json" not in members:
                raise ModelError(f"{path} has no config.json: it is not a Keras 3 .keras model file")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelError(f"{path}: config.json is {info.file_size} bytes (> {MAX_CONFIG_BYTES}); refusing")
            raw = archive.read("config.json")
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{path} is not a valid .keras file (truncated or not a zip archive: {exc})") from None
    except (EOFError, OSError, zipfile.LargeZipFile) as exc:  # truncated member data, CRC errors
        raise ModelError(f"{path} is not a readable .keras file ({type(exc).__name__}: {exc})") from None
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: config.json is not valid JSON ({exc})") from None
    unsafe, modules = [], []
    _walk(config, "model", unsafe, modules)
    return KerasFileReport(path=path, unsafe=unsafe, modules=modules, members=members)


def load_model(path, *, compile: bool = True, safe_mode: bool = True, custom_objects=None):
    """Load a ``.keras`` model without running code from the file (unless you opt in).

    Args:
        path: a ``.keras`` file.
        safe_mode: True (default) refuses Lambda layers and serialized Python functions, which would
            execute bytecode from the file. Pass False only for files you made or trust.
        compile: restore the training configuration too (False: inference only).
        custom_objects: extra classes the file needs (tfxfer's own are registered here).

    Raises:
        UnsafeFileError: the file holds code (lists where) and ``safe_mode`` is True.
        ModelError: the file is truncated, corrupt or cannot be deserialized.
        ArgumentError: ``path`` is not an existing ``.keras`` file.

    Example:
        >>> from tfxfer.reliability import load_model
        >>> model = load_model("shared_model.keras")  # doctest: +SKIP
        >>> trusted = load_model("my_lambda_model.keras", safe_mode=False)  # doctest: +SKIP
    """
    import keras

    if not isinstance(safe_mode, bool):
        raise ArgumentTypeError("safe_mode", safe_mode, "a bool")
    report = scan_keras_file(path)
    if safe_mode and report.unsafe:
        where = "; ".join(f"{what} at {loc}" for loc, what in report.unsafe[:8])
        raise UnsafeFileError(
            f"{report.path} contains Python code that would run when it loads ({where}). A .keras file "
            "from someone else can use this to run anything on your machine. If you made this file or "
            "trust its author, load it with tfxfer.reliability.load_model(path, safe_mode=False)"
        )
    register_serializables()
    try:
        return keras.saving.load_model(report.path, custom_objects=custom_objects, compile=compile,
                                       safe_mode=safe_mode)
    except ValueError as exc:
        if "unsafe" in str(exc).lower() and "lambda" in str(exc).lower():
            raise UnsafeFileError(f"{report.path}: Keras refused code in the file: {str(exc)[:400]}") from None
        raise ModelError(f"{report.path} could not be loaded: {type(exc).__name__}: {str(exc)[:400]}") from exc
    except (TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{report.path} could not be loaded: {type(exc).__name__}: {str(exc)[:400]}") from exc


def load_yaml(source, *, name: str = "config"):
    """Parse YAML text or a ``.yaml`` file with the safe loader (plain data only).

    Python tags such as ``!!python/object/apply:os.system`` are refused with `ConfigError`; nothing in
    the file is executed or imported.

    Example:
        >>> from tfxfer.reliability.safe_load import load_yaml
        >>> load_yaml("epochs: 3\\nbackbone: mobilenet_v2")
        {'epochs': 3, 'backbone': 'mobilenet_v2'}
    """
    import yaml

    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                            and source.endswith((".yaml", ".yml"))):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ArgumentError(name, path, "must be an existing YAML file")
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
        where = path
    elif isinstance(source, str):
        text, where = source, f"<{name}>"
    else:
        raise ArgumentTypeError(name, source, "YAML text or a path to a .yaml file")
    try:
        return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 (SafeLoader)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{where}: {exc.problem} {exc.problem_mark or ''}".strip()
                          + ". Only plain YAML data (mappings, lists, strings, numbers) is allowed; "
                            "Python tags are refused") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {str(exc).splitlines()[0]} "
                          f"{getattr(exc, 'problem_mark', '') or ''}".strip()) from None
