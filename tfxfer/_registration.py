"""Register tfxfer's Keras classes when ``import tfxfer`` runs, without importing TensorFlow early.

A ``.keras`` file names tfxfer classes (``tfxfer>Preprocess``, ``tfxfer>DiscriminativeAdam``, ...);
Keras finds them only if the module that defines them was imported. ``import tfxfer`` must stay
cheap (the CLI blocks TensorFlow until a command needs it), so registration follows Keras:

* Keras already loaded when ``import tfxfer`` runs: register at the end of ``tfxfer/__init__``.
* Keras not loaded yet: a meta-path finder wraps the loaders of ``keras`` (and of the other
  watched packages); when such a module has finished executing and Keras is loaded, the classes
  are registered (importing TensorFlow then is no extra cost: Keras did).
* Keras loaded from inside a module that registration itself needs (``import keras_hub`` first,
  or ``from tfxfer.models import build_model`` importing Keras half-way through ``tfxfer.models``):
  registration waits until that module has finished executing, then runs.

The state is ``waiting`` (no Keras yet) -> ``pending`` (Keras loaded, a needed module still
initializing) -> ``done``; the finder leaves ``sys.meta_path`` once done. Standard library only.

Example:
    >>> import tfxfer, keras
    >>> from tfxfer._registration import state
    >>> state()
    'done'
    >>> "tfxfer>Preprocess" in keras.saving.get_custom_objects()
    True
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

#: Every module that registers Keras classes with ``package="tfxfer"`` (a test checks the list is
#: complete). Imported by name: the text modules need keras-hub, and most of these live on higher
#: floors than the package root.
SERIALIZABLE_MODULES = (
    "tfxfer.preprocess",
    "tfxfer.optim.discriminative",
    "tfxfer.optim.schedules",
    "tfxfer.optim.l2sp",
    "tfxfer.freezing.gradual",
    "tfxfer.train.unfreeze",
    "tfxfer.train.best",
    "tfxfer.train.averaging",  # a callback a ResumableCheckpoint's config can carry
    "tfxfer.train.losses",  # SparseCrossentropy with label smoothing: compiled into saved models
    "tfxfer.reliability.checkpoint",
    "tfxfer.reliability.divergence",
    "tfxfer.reliability.shuffle",
    "tfxfer.text.layers",
    "tfxfer.text.classifier",
    "tfxfer.distill.distiller",
    "tfxfer.distill.logits",
    "tfxfer.adapt.coral",
    "tfxfer.adapt.dann",
    "tfxfer.recipes.training_log",  # a callback: never inside a saved model
)
#: Text modules: imported only when keras-hub is installed.
_NEEDS_KERAS_HUB = ("tfxfer.text.",)
#: Top-level packages registration imports; it waits while any of them is half-initialized.
_WATCHED = ("keras", "keras_hub", "tensorflow", "tf_keras", "tfxfer")

_state = {"value": "waiting", "missing": []}


def state() -> str:
    """``'waiting'`` (Keras not imported), ``'pending'`` (waiting for a module to finish) or ``'done'``."""
    return _state["value"]


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _busy(*, ignore=()) -> list[str]:
    """Watched modules that are executing right now (registration would see them half-built)."""
    return [name for name in list(sys.modules)
            if name.split(".", 1)[0] in _WATCHED and name not in ignore and _initializing(name)]


def register_serializables() -> list[str]:
    """Import every module of `SERIALIZABLE_MODULES`; returns those that could not be imported
    (keras-hub missing: text models cannot load, image models still can)."""
    from importlib.util import find_spec

    has_hub = "keras_hub" in sys.modules or find_spec("keras_hub") is not None
    missing = []
    for name in SERIALIZABLE_MODULES:
        if name.startswith(_NEEDS_KERAS_HUB) and not has_hub:
            missing.append(name)
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    _state["value"], _state["missing"] = "done", missing
    _uninstall()
    return missing


def _try_register(*, ignore=()) -> None:
    if _state["value"] == "done" or "keras" not in sys.modules or _initializing("keras"):
        return
    if _busy(ignore=ignore):
        _state["value"] = "pending"
        return
    _state["value"] = "registering"
    try:
        register_serializables()
    except BaseException:
        _state["value"] = "pending"
        raise


class _AfterExec(importlib.abc.Loader):
    """Runs the real loader, then tries to register (the module is complete at that point)."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            self._loader.exec_module(module)
        finally:
            spec = getattr(module, "__spec__", None)
            if spec is not None:  # importlib clears it only after exec_module returns
                spec._initializing = False
            _try_register()

    def __getattr__(self, name):  # get_source, is_package, ... of the wrapped loader
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the watched packages' modules until registration is done."""

    def find_spec(self, fullname, path=None, target=None):
        if _state["value"] == "done" or fullname.split(".", 1)[0] not in _WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _AfterExec(spec.loader)
                return spec
        return None


_finder = _Finder()


def _uninstall() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def install() -> None:
    """Called once by ``tfxfer/__init__``: register now if Keras is loaded, else wait for it."""
    if _state["value"] == "done":
        return
    if "keras" in sys.modules and not _initializing("keras"):
        _try_register(ignore=("tfxfer",))  # tfxfer/__init__ itself is running this line
        if _state["value"] == "done":
            return
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
