"""Pre-flight: check that a model can become a clean, builtins-only TFLite file before exporting it.

Three checks, each failing early with the offending layers named:

1. **Augmentation layers** (``RandomFlip``, ``RandAugment``, keras-cv layers, ...) must not be
   inside an exported model: SavedModel exports keep them active and keras-cv ignores
   ``training=False``. Augment in ``tf.data`` instead.
2. **Random ops** in the inference graph (``keras.random.*`` / ``tf.random.*`` called outside
   training) make predictions non-deterministic and need Flex ops.
3. **Unsupported ops**: a trial float32 conversion restricted to TFLite builtins; ops that would
   need Flex (select TF ops) or a custom kernel are listed with their layers.

On success the report lists the TFLite operators the model uses.

Example:
    >>> import keras
    >>> from tfxfer.export import preflight
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.RandomFlip(name="flip"),
    ...                           keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> report = preflight(model, raise_on_error=False)
    >>> report.ok, report.augmentation_layers
    (False, ['flip (RandomFlip)'])
"""

from __future__ import annotations

import dataclasses
import re

from tfxfer.errors import ExportError
from tfxfer.export import _trace

#: Class names (anywhere in a layer's MRO) that mark an augmentation layer.
AUGMENTATION_CLASSES = frozenset({
    "RandAugment", "AugMix", "MixUp", "CutMix", "Solarization", "TrivialAugmentWide",
    "BaseImageAugmentationLayer", "VectorizedBaseImageAugmentationLayer",
})
_RANDOM_OP = re.compile(r"Random|^Rng|Multinomial|TruncatedNormal")


@dataclasses.dataclass
class PreflightReport:
    """What the pre-flight found.

    Attributes:
        ops: TFLite operator -> count in the trial float32 conversion (empty if it failed).
        augmentation_layers: ``"path (ClassName)"`` of every augmentation layer.
        random_ops: random graph op types found, with ``random_op_layers`` their layers.
        unsupported_ops: TF op types TFLite builtins cannot run; ``flex_ops`` the subset that
            Flex (select TF ops) could run; ``unsupported_layers`` their layers.
        conversion_error: first lines of the converter's error, if any.
    """

    ops: dict = dataclasses.field(default_factory=dict)
    augmentation_layers: list = dataclasses.field(default_factory=list)
    random_ops: list = dataclasses.field(default_factory=list)
    random_op_layers: list = dataclasses.field(default_factory=list)
    unsupported_ops: list = dataclasses.field(default_factory=list)
    flex_ops: list = dataclasses.field(default_factory=list)
    unsupported_layers: list = dataclasses.field(default_factory=list)
    conversion_error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.augmentation_layers or self.random_ops or self.unsupported_ops
                    or self.conversion_error)

    def problems(self) -> list[str]:
        out = []
        if self.augmentation_layers:
            out.append(
                "augmentation layers inside the model: " + ", ".join(self.augmentation_layers)
                + " (export `tfxfer.augment.strip_augmentation(model)` instead, which rebuilds the model "
                "without them and the same weights, and augment in tf.data, e.g. tfxfer.augment)"
            )
        if self.random_ops:
            where = ", ".join(self.random_op_layers) or "unknown layers"
            out.append(f"random ops {sorted(set(self.random_ops))} in the inference graph, in layers: {where}")
        if self.unsupported_ops:
            where = ", ".join(self.unsupported_layers) or "unknown layers"
            flex = f"; Flex/select TF ops would be needed for {self.flex_ops}" if self.flex_ops else ""
            out.append(f"ops not in TFLite builtins {self.unsupported_ops} in layers: {where}{flex}")
        elif self.conversion_error:
            out.append(f"trial conversion failed: {self.conversion_error}")
        return out

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), ok=self.ok)


def augmentation_layers(model) -> list[str]:
    """``"path (ClassName)"`` of augmentation layers in ``model`` (nested models included)."""
    found = []
    for path, layer in _trace.iter_layers(model):
        classes = type(layer).__mro__
        names = {cls.__name__ for cls in classes}
        from_keras_cv = any(cls.__module__.startswith("keras_cv") for cls in classes) and (
            "preprocessing" in type(layer).__module__)
        if (type(layer).__name__.startswith("Random") or names & AUGMENTATION_CLASSES or from_keras_cv):
            found.append(f"{path} ({type(layer).__name__})")
    return found


def _parse_converter_error(message: str) -> tuple[list[str], list[str]]:
    unsupported = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    flex: list[str] = []
    for line in message.splitlines():
        match = re.match(r"\s*(TF Select ops|Flex ops|Custom ops):\s*(.*)", line)
        if match:
            listed = [op.strip() for op in match.group(2).split(",") if op.strip()]
            unsupported.extend(listed)
            if match.group(1) != "Custom ops":
                flex.extend(listed)
    return sorted(set(unsupported)), sorted(set(flex))


def preflight(model, *, raise_on_error: bool = True, check_conversion: bool = True) -> PreflightReport:
    """Check ``model`` for augmentation layers, random ops and non-builtin ops.

    Args:
        model: a single-input image ``keras.Model``.
        raise_on_error: raise `ExportError` naming the offending layers (default) instead of
            returning a failing report.
        check_conversion: run the trial builtins-only TFLite conversion (False for SavedModel
            exports, which only need the augmentation and random-op checks).

    Returns:
        A `PreflightReport`; ``report.ops`` lists the TFLite operators on success.
    """
    return preflight_traced(_trace.Traces(model), raise_on_error=raise_on_error, check_conversion=check_conversion)


def preflight_traced(traces, *, raise_on_error: bool = True, check_conversion: bool = True) -> PreflightReport:
    """`preflight` of ``traces.model`` through an export's shared `_trace.Traces`: its trace is reused by
    the variants, and its trial conversion, which is the float32 file, is kept in ``traces.float32``."""
    from tfxfer.export.converter import base_converter

    model = traces.model
    _trace.check_image_model(model)
    report = PreflightReport(augmentation_layers=augmentation_layers(model))
    function = traces.function()
    nodes = _trace.graph_nodes(function)
    random_nodes = [(op, name) for op, name in nodes if _RANDOM_OP.search(op)]
    report.random_ops = sorted({op for op, _ in random_nodes})
    report.random_op_layers = _trace.layers_for_nodes(model, [name for _, name in random_nodes])
    if check_conversion and not report.random_ops:  # random ops carry seed variables that cannot be frozen
        converter = base_converter(function, "float32")  # the float32 variant's converter, builtins only
        try:
            content = converter.convert()
        except Exception as exc:  # the converter raises ConverterError / ValueError / RuntimeError
            message = str(exc)
            report.unsupported_ops, report.flex_ops = _parse_converter_error(message)
            report.unsupported_layers = _trace.layers_for_nodes(
                model, [name for op, name in nodes if op in report.unsupported_ops])
            report.conversion_error = " ".join(message.strip().splitlines()[:3])[:500]
        else:
            from tfxfer.export.flatbuffer import tflite_ops

            report.ops = tflite_ops(content)
            traces.float32 = content
    if raise_on_error and not report.ok:
        raise ExportError(
            f"Model {model.name!r} cannot be exported as a clean TFLite inference graph: "
            + "; ".join(report.problems())
        )
    return report
