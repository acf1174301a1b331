"""The shared test factories: one for tiny models, one for tiny data.

Naming: ``tiny_*`` returns an object in memory (a model, a spec, arrays); ``make_*`` writes files
under a folder the caller gives and returns what it wrote. Every factory is deterministic for its
arguments (``seed``) and small enough that a test using it runs in seconds on 2 CPU cores.

Models
    `tiny_model`          a real tfxfer transfer model (`build_model`, ``weights=None``) over a
                          catalog backbone at a tiny input size, or over a `tiny_spec`.
    `tiny_spec`           a registered-style `BackboneSpec` over a ~1k-parameter CNN: ``"convs"``
                          (two convs, groups stem/top) or ``"mobilenet_v2"`` (MobileNetV2's layer
                          names, so its groups, freezing and unfreezing rules apply unchanged).
    `tiny_nested_model`   a hand-built raw pixels -> [Preprocess] -> nested "backbone" -> pool ->
                          [dropout] -> head model, for tests that need exact layer names.
    `tiny_text_encoder`   a tiny random BERT `TextEncoder`; `tiny_text_classifier` puts a head on it.

Data
    `tiny_images`         raw 0-255 float32 images with a learnable signal and integer labels.
    `make_image_folder`   class folders of patterned PNGs (plus one broken file).
    `make_simple_folder`  class folders of distinct gradient PNGs.
    `make_messy_folder`   every valid and every broken image kind in each class folder.
    `make_text_table`     a pos/neg reviews CSV; `make_conll_file` a CoNLL NER file;
    `make_text_preset`    a tiny BERT saved as a local keras-hub preset.

Example:
    >>> from tests.factories import tiny_images, tiny_model
    >>> model = tiny_model(3, size=32)
    >>> x, y = tiny_images(4, classes=3)
    >>> model.predict(x, verbose=0).shape
    (4, 3)
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import random
import struct
import zlib

import numpy as np

from tfxfer.errors import ArgumentError

# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def _convs_backbone(input_shape, weights=None, *, width: int, name: str, top: bool = False):
    """conv1 (stride 2) -> conv2 (stride 2); with ``top`` an ImageNet-style 10-class head."""
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    if top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _mobilenet_v2_like_backbone(input_shape, weights=None):
    """A ~1k-parameter CNN named "mobilenet_v2" with the layer names MobileNetV2's groups look for."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="Conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    x = keras.layers.Conv2D(4, 1, name="expanded_conv_project")(x)
    x = keras.layers.BatchNormalization(name="expanded_conv_project_BN")(x)
    for block in (2, 5, 9, 12):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"block_{block}_project")(x)
        x = keras.layers.Add(name=f"block_{block}_add")([x, y])
    x = keras.layers.Conv2D(6, 1, name="block_16_project")(x)
    x = keras.layers.BatchNormalization(name="block_16_project_BN")(x)
    x = keras.layers.Conv2D(8, 1, name="Conv_1")(x)
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    return keras.Model(inputs, x, name="mobilenet_v2")


def tiny_spec(kind: str = "convs", *, name: str = "tiny", width: int = 4, with_head: bool = False):
    """A `BackboneSpec` over a tiny CNN, accepted wherever a catalog name is.

    Args:
        kind: ``"convs"``: conv1 -> conv2 (``width`` and ``2 * width`` filters), family "tiny",
            groups ``stem`` (conv1) and ``top``, "unit" preprocessing, native size 32. ``"mobilenet_v2"``:
            the catalog MobileNetV2 spec (groups, preprocessing, family) with its builder replaced
            by a ~1k-parameter look-alike that keeps MobileNetV2's layer names; ``name``, ``width``
            and ``with_head`` do not apply to it.
        name: the spec's and the backbone model's name ("convs").
        width: filters of conv1 ("convs").
        with_head: give the spec a ``top_builder`` (a 10-class "predictions" head), as the
            ImageNet-head backbones have ("convs").

    Returns:
        A `BackboneSpec` with ``min_input_size=8``.

    Example:
        >>> spec = tiny_spec("convs", name="tiny_a", width=4)
        >>> tiny_model(2, backbone=spec, size=16).count_params() < 2000
        True
    """
    from tfxfer.backbones.spec import BackboneSpec

    if kind == "mobilenet_v2":
        from tfxfer.backbones import get_spec

        return dataclasses.replace(get_spec("mobilenet_v2"), builder=_mobilenet_v2_like_backbone, min_input_size=8)
    if kind != "convs":
        raise ArgumentError("kind", kind, "must be 'convs' or 'mobilenet_v2'")
    build = functools.partial(_convs_backbone, width=width, name=name)
    return BackboneSpec(
        name=name, family="tiny", builder=build,
        top_builder=functools.partial(build, top=True) if with_head else None,
        input_size=(32, 32), preprocessing="unit", groups=(("stem", r"^conv1$"), ("top", None)),
        min_input_size=8, source="test",
    )


def tiny_model(num_classes: int = 2, *, backbone="mobilenet_v2", size: int = 32, channels: int = 3,
               task: str = "multiclass", dropout: float = 0.2, hidden_units: int | None = None,
               freeze: bool = True, seed: int | None = None):
    """A tfxfer transfer model (`build_model`) with random weights at a tiny input size.

    Args:
        num_classes: outputs of the head.
        backbone: a catalog name (built with ``weights=None``) or a `BackboneSpec` such as
            `tiny_spec`'s (milliseconds per step instead of a real backbone's tenths of a second).
        size: input height and width.
        channels: 3 (RGB) or 1 (grayscale).
        task: "multiclass" (softmax head), "multilabel" (sigmoid) or "regression" (linear).
        dropout: dropout before the head.
        hidden_units: an optional hidden dense layer before the head.
        freeze: build with the backbone frozen (`build_model`'s default) or trainable.
        seed: when given, `keras.utils.set_random_seed(seed)` first, so the weights repeat.

    Returns:
        A `keras.Model` taking raw 0-255 pixels of shape (size, size, channels).

    Example:
        >>> tiny_model(3, task="multilabel").output_shape
        (None, 3)
    """
    import keras

    from tfxfer.models import build_model

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return build_model(backbone, num_classes, input_size=(size, size), channels=channels, weights=None, task=task,
                       dropout=dropout, hidden_units=hidden_units, freeze=freeze)


def _residual_body(x, *, top: int, extra):
    """Conv/BN/ReLU6 stem, depthwise, 1x1 project, residual Add, [extra], top conv (quantize tests)."""
    import keras

    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    y = keras.layers.BatchNormalization(name="stem_bn")(y)
    y = keras.layers.ReLU(6.0, name="stem_relu")(y)
    z = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    z = keras.layers.BatchNormalization(name="dw_bn")(z)
    z = keras.layers.ReLU(6.0, name="dw_relu")(z)
    z = keras.layers.Conv2D(8, 1, use_bias=False, name="project")(z)
    z = keras.layers.BatchNormalization(name="project_bn")(z)
    y = keras.layers.Add(name="residual_add")([y, z])
    if extra is not None:
        y = extra(y)
    y = keras.layers.Conv2D(top, 3, strides=2, padding="same", name="top_conv")(y)
    return keras.layers.ReLU(name="top_relu")(y)


def _plain_body(x, *, top: int, extra):
    """conv1/bn1/relu1 (8 filters) -> conv2/bn2/relu2 (``top`` filters), both stride 2 (export tests)."""
    import keras

    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x)
    y = keras.layers.BatchNormalization(name="bn1")(y)
    y = keras.layers.ReLU(name="relu1")(y)
    y = keras.layers.Conv2D(top, 3, strides=2, padding="same", name="conv2")(y)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    return keras.layers.ReLU(name="relu2")(y)


def _separable_body(x, *, top: int, extra):
    """conv -> dw (depthwise) -> bn -> sep (separable), ``top`` filters, stride 1 (L2-SP tests)."""
    import keras

    y = keras.layers.Conv2D(top, 3, padding="same", activation="relu", name="conv")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = keras.layers.BatchNormalization(name="bn")(y)
    return keras.layers.SeparableConv2D(top, 3, padding="same", activation="relu", name="sep")(y)


_BODIES = {"residual": _residual_body, "plain": _plain_body, "separable": _separable_body}


def tiny_nested_model(*, body: str = "residual", size: int = 16, classes: int = 2, preprocess: str | None = "tf",
                      extra=None, extra_at: str = "backbone", top: int = 16, dropout: float | None = 0.1,
                      backbone_input_name: str | None = "input_layer", name: str | None = "tiny",
                      seed: int | None = None):
    """A hand-built model with tfxfer's structure and fixed layer names, for tests that name layers.

    raw pixels "image" -> [Preprocess(preprocess) "preprocess"] -> [extra, if extra_at="input"] ->
    nested functional "backbone" (``body``) -> GlobalAveragePooling2D "pool" -> [Dropout "head_dropout"]
    -> Dense softmax "head".

    Args:
        body: the backbone's layers. ``"residual"``: stem_conv/stem_bn/stem_relu (8 filters, stride 2),
            dw/dw_bn/dw_relu, project/project_bn, residual_add, [extra], top_conv/top_relu (``top``
            filters, stride 2). ``"plain"``: conv1/bn1/relu1 (8 filters) and conv2/bn2/relu2 (``top``
            filters), both stride 2. ``"separable"``: conv (relu), dw, bn, sep (relu), ``top`` filters
            each, stride 1 (kernels: conv, dw, sep's depthwise and pointwise).
        size: input height and width.
        classes: outputs of the softmax head.
        preprocess: a `Preprocess` mode ("tf", "torch", ...) applied to the raw pixels, or None.
        extra: an optional layer (or callable on a tensor) inserted where ``extra_at`` says.
        extra_at: "backbone" (inside the backbone, after the residual block; body "residual" only)
            or "input" (after preprocessing, before the backbone).
        top: filters of the backbone's last convolution.
        dropout: the head's dropout rate, or None for no dropout layer.
        backbone_input_name: the name of the backbone's Input (None: Keras picks one).
        name: the outer model's name (None: Keras picks one).
        seed: when given, `keras.utils.set_random_seed(seed)` first.

    Example:
        >>> model = tiny_nested_model(body="plain", size=32, classes=4, top=32, dropout=0.2)
        >>> [layer.name for layer in model.get_layer("backbone").layers][1:3]
        ['conv1', 'bn1']
    """
    import keras

    from tfxfer.preprocess import Preprocess

    if body not in _BODIES:
        raise ArgumentError("body", body, f"must be one of {sorted(_BODIES)}")
    if extra_at not in ("backbone", "input") or (extra_at == "backbone" and extra is not None and body != "residual"):
        raise ArgumentError("extra_at", extra_at, "must be 'input', or 'backbone' with body='residual'")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs if preprocess is None else Preprocess(preprocess, name="preprocess")(inputs)
    if extra is not None and extra_at == "input":
        x = extra(x)
    b_in = keras.Input((size, size, 3), name=backbone_input_name)
    inner = _BODIES[body](b_in, top=top, extra=extra if extra_at == "backbone" else None)
    x = keras.Model(b_in, inner, name="backbone")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout is not None:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


#: The WordPiece vocabulary of the text tests (sub-words, accents, punctuation).
WORDPIECE_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "'", "-"]
    + "the a film movie plot is was good great fine bad awful dull zoe visits paris in berlin and "
      "meets anna london to new york loved hated it acting music".split()
    + ["un", "##believ", "##able", "##s", "##ly", "##ed", "##ing", "cafe", "über", "##o"]
)

#: The whole-word vocabulary of `make_text_table` and `make_conll_file` (no sub-words).
REVIEW_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!"]
                + "the a film movie plot acting music good great fine loved bad awful dull hated zoe anna visits "
                  "and paris berlin london new york".split())


def tiny_text_encoder(*, vocab=WORDPIECE_VOCAB, sequence_length: int = 16, num_layers: int = 2, num_heads: int = 2,
                      hidden_dim: int = 16, intermediate_dim: int = 32, dropout: float = 0.0):
    """A tiny random BERT `TextEncoder` (`build_bert_encoder`) over ``vocab``.

    Example:
        >>> tiny_text_encoder(num_layers=1).backbone.num_layers
        1
    """
    from tfxfer.text import build_bert_encoder

    return build_bert_encoder(list(vocab), sequence_length=sequence_length, num_layers=num_layers,
                              num_heads=num_heads, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                              dropout=dropout)


def tiny_text_classifier(num_classes: int = 2, *, task: str = "multiclass", pooling: str = "mean",
                         dropout: float = 0.1, encoder=None):
    """A text classifier taking raw strings (`build_text_classifier`) over ``encoder`` or a fresh
    `tiny_text_encoder()`.

    Example:
        >>> from tfxfer.text import predict_texts
        >>> predict_texts(tiny_text_classifier(3), ["good film", "bad plot"]).shape
        (2, 3)
    """
    from tfxfer.text import build_text_classifier

    return build_text_classifier(encoder if encoder is not None else tiny_text_encoder(), num_classes, task=task,
                                 pooling=pooling, dropout=dropout)


# ----------------------------------------------------------------------------------------------
# Data: arrays
# ----------------------------------------------------------------------------------------------


def _brightness(rng, n, size, channels, classes):
    y = np.arange(n) % classes
    x = rng.uniform(0, 255, size=(n, size, size, channels)).astype("float32")
    x = np.clip(x * 0.5 + (y[:, None, None, None] * 255.0 / max(classes - 1, 1)) * 0.5, 0, 255).astype("float32")
    return x, y


def _brightness_steps(rng, n, size, channels, classes):
    y = np.arange(n) % classes
    x = rng.uniform(0, 60, size=(n, size, size, channels)) + y[:, None, None, None] * 90.0
    return x.astype("float32"), y


def _mean_colour(rng, n, size, channels, classes):
    y = np.arange(n) % classes
    x = rng.uniform(0, 255, (n, size, size, channels)) * 0.4
    x[..., 0] += 150.0 * (y == 0)[:, None, None]
    x[..., 1] += 150.0 * (y == 1)[:, None, None]
    return np.clip(x, 0, 255).astype("float32"), y.astype("int64")


def _dominant_channel(rng, n, size, channels, classes):
    y = rng.integers(0, classes, n)
    x = rng.uniform(30, 110, (n, size, size, channels))
    for i, c in enumerate(y):
        if c < 3:
            x[i, :, :, c] += rng.uniform(60, 140)
        else:
            x[i] += rng.uniform(60, 140)
    return np.clip(np.round(x), 0, 255).astype("float32"), y


def _bars(rng, n, size, channels, classes):
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 60, (n, size, size, channels))
    for i, label in enumerate(y):
        pos = rng.integers(2, size - 2)
        if label == 0:
            x[i, pos - 1: pos + 1, :, :] += 180
        else:
            x[i, :, pos - 1: pos + 1, :] += 180
    return np.clip(x, 0, 255).astype("float32"), y


_SIGNALS = {  # name -> (generator, allowed class counts, allowed channel counts)
    "brightness": (_brightness, range(1, 1 << 30), (1, 3)),
    "brightness_steps": (_brightness_steps, range(1, 4), (1, 3)),
    "mean_colour": (_mean_colour, range(2, 1 << 30), (3,)),
    "dominant_channel": (_dominant_channel, range(2, 5), (3,)),
    "bars": (_bars, (2,), (1, 3)),
}


def tiny_images(n: int = 16, *, size: int = 32, channels: int = 3, classes: int = 2, signal: str = "brightness",
                seed: int = 0):
    """``n`` raw-pixel images (float32, 0-255 unless stated) and int64 labels a small CNN can learn.

    Args:
        n: number of images.
        size: height and width.
        channels: 3 (RGB) or 1 (grayscale) where the signal allows it.
        classes: number of classes.
        signal: what gives the label away.
            ``"brightness"``: uniform noise blended 50/50 with a level that rises with the class;
            labels cycle 0, 1, ..., classes-1.
            ``"brightness_steps"``: uniform(0, 60) plus 90 per class step (up to 3 classes; not clipped);
            labels cycle.
            ``"mean_colour"``: dim noise, red added for class 0, green for class 1, nothing for the
            others; labels cycle.
            ``"dominant_channel"``: up to 4 classes, red, green, blue or gray (all channels) brighter;
            labels random.
            ``"bars"``: 2 classes, a bright horizontal (0) or vertical (1) bar; labels random.
        seed: the NumPy generator's seed.

    Returns:
        ``(images, labels)``.

    Example:
        >>> x, y = tiny_images(6, size=16, classes=3, signal="mean_colour")
        >>> x.shape, y.tolist()
        ((6, 16, 16, 3), [0, 1, 2, 0, 1, 2])
    """
    if signal not in _SIGNALS:
        raise ArgumentError("signal", signal, f"must be one of {sorted(_SIGNALS)}")
    generate, allowed_classes, allowed_channels = _SIGNALS[signal]
    if classes not in allowed_classes or channels not in allowed_channels:
        raise ArgumentError("classes", classes, f"and channels={channels!r} must suit signal={signal!r}")
    return generate(np.random.default_rng(seed), n, size, channels, classes)


# ----------------------------------------------------------------------------------------------
# Data: image folders
# ----------------------------------------------------------------------------------------------


def make_image_folder(root, *, classes=("circle", "square", "stripes"), per_class: int = 10, size: int = 24,
                      seed: int = 0, broken: bool = True):
    """Class sub-folders of small synthetic PNGs (distinct patterns + noise); with ``broken``, one
    empty ``broken.jpg`` in the first class, so a data summary has something to report.

    Returns:
        ``str(root)``.

    Example:
        >>> import tempfile
        >>> root = make_image_folder(tempfile.mkdtemp(), per_class=2)
        >>> sorted(os.listdir(os.path.join(root, "circle")))
        ['00.png', '01.png', 'broken.jpg']
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = {
        "circle": ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2),
        "square": (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4),
        "stripes": (xx // 3) % 2 == 0,
    }
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            base = patterns.get(name, (xx + c) % (c + 2) == 0).astype(np.float32) * 200
            image = np.clip(base[..., None] + rng.normal(0, 25, (size, size, 3)) + 20 * c, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(folder, f"{i:02d}.png"))
    if broken:
        open(os.path.join(root, classes[0], "broken.jpg"), "wb").close()
    return str(root)


def gradient(h: int = 24, w: int = 32, seed: int = 0):
    """A distinct RGB uint8 image per seed (so content hashes differ)."""
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w)[None, :]
    a[..., 1] = np.linspace(0, 255, h)[:, None]
    a[..., 2] = rng.integers(0, 256, (h, w))  # noise: every seed gives different content
    return a


def png16_rgb(a16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = a16.shape
    raw = b"".join(b"\x00" + a16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _save(mode, fmt, **kw):
    def write(path, seed):
        from PIL import Image

        img = Image.fromarray(gradient(seed=seed))
        if mode == "P":
            img = img.convert("P", palette=Image.ADAPTIVE)
        elif mode == "I;16":
            img = Image.fromarray(gradient(seed=seed)[..., 2].astype(np.uint16) * 257)
        elif mode != "RGB":
            img = img.convert(mode)
        img.save(path, format=fmt, **kw)
    return write


#: Valid files per class in the messy folder: file name -> writer(path, seed).
VALID_KINDS = {
    "rgb.jpg": _save("RGB", "JPEG", quality=90),
    "gray.jpg": _save("L", "JPEG"),
    "cmyk.jpg": _save("CMYK", "JPEG"),
    "rgb.png": _save("RGB", "PNG"),
    "gray.png": _save("L", "PNG"),
    "rgba.png": _save("RGBA", "PNG"),
    "palette.png": _save("P", "PNG"),
    "gray16.png": _save("I;16", "PNG"),
    "rgb16.png": lambda path, seed: open(path, "wb").write(png16_rgb(gradient(seed=seed).astype(np.uint16) * 257)),
    "rgb.bmp": _save("RGB", "BMP"),
    "palette.bmp": _save("P", "BMP"),
    "palette.gif": _save("P", "GIF"),
    "gray16.tif": _save("I;16", "TIFF"),
}


def _encoded(seed, fmt, **kw):
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(gradient(seed=seed)).save(out, format=fmt, **kw)
    return out.getvalue()


def _corrupt_jpeg(path, seed):
    data = bytearray(_encoded(seed, "JPEG", quality=90))
    rng = np.random.default_rng(seed)
    data[20:400] = rng.integers(0, 256, 380, dtype=np.uint8).tobytes()  # tables destroyed, magic kept
    open(path, "wb").write(bytes(data))


def _truncated(fmt, **kw):
    def write(path, seed):
        data = _encoded(seed, fmt, **kw)
        open(path, "wb").write(data[: len(data) // 2])
    return write


#: Broken files per class in the messy folder: file name -> (writer(path, seed), expected skip reason).
BROKEN_KINDS = {
    "corrupt.jpg": (_corrupt_jpeg, "corrupt"),
    "zero.png": (lambda p, s: open(p, "wb").close(), "empty_file"),
    "truncated.png": (_truncated("PNG"), "truncated"),
    "truncated.jpg": (_truncated("JPEG", quality=90), "truncated"),
    "notreally.jpg": (lambda p, s: open(p, "w").write("this is text, not a JPEG\n"), "not_an_image"),
    ".DS_Store": (lambda p, s: open(p, "wb").write(b"\x00\x00\x00\x01Bud1" + bytes(64)), "hidden_file"),
    "readme.txt": (lambda p, s: open(p, "w").write("notes about the photos\n"), "unsupported_extension"),
}


def make_messy_folder(root, *, classes=("cat", "dog")):
    """Every `VALID_KINDS` and every `BROKEN_KINDS` file in each class folder.

    Returns:
        ``{skip reason: expected count}`` over the whole folder.

    Example:
        >>> import tempfile
        >>> make_messy_folder(tempfile.mkdtemp(), classes=("a",))["truncated"]
        2
    """
    seed = 0
    expected = {}
    for c in classes:
        folder = os.path.join(root, c)
        os.makedirs(folder, exist_ok=True)
        for name, write in VALID_KINDS.items():
            seed += 1
            write(os.path.join(folder, name), seed)
        for name, (write, reason) in BROKEN_KINDS.items():
            seed += 1
            write(os.path.join(folder, name), seed)
            expected[reason] = expected.get(reason, 0) + 1
    return expected


def make_simple_folder(root, counts, *, size=(20, 24), seed0: int = 0):
    """``counts``: {class: n} distinct `gradient` PNGs of ``size`` (h, w) per class; returns ``root``.

    Example:
        >>> import tempfile
        >>> root = make_simple_folder(tempfile.mkdtemp(), {"a": 2})
        >>> sorted(os.listdir(os.path.join(root, "a")))
        ['000.png', '001.png']
    """
    from PIL import Image

    seed = seed0
    for c, n in counts.items():
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n):
            seed += 1
            Image.fromarray(gradient(*size, seed=seed)).save(os.path.join(root, c, f"{i:03d}.png"))
    return root


# ----------------------------------------------------------------------------------------------
# Data: text
# ----------------------------------------------------------------------------------------------


def make_text_table(folder, *, seed: int = 0, name: str = "reviews.csv"):
    """A ``text,label`` CSV of 48 short reviews, "pos"/"neg" alternating, whose words give the label
    away (all in `REVIEW_VOCAB`); returns its path.

    Example:
        >>> import tempfile
        >>> path = make_text_table(tempfile.mkdtemp())
        >>> open(path).readline().strip()
        'text,label'
    """
    rnd = random.Random(seed)
    pos = ["good film", "great movie", "loved the acting", "fine plot", "great music"]
    neg = ["bad film", "awful movie", "hated the plot", "dull acting", "bad music"]
    path = os.path.join(folder, name)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(24):
            writer.writerow([rnd.choice(pos) + " !" * (i % 3), "pos"])
            writer.writerow([rnd.choice(neg) + " ." * (i % 3), "neg"])
    return path


def make_conll_file(folder, *, sentences: int = 30, name: str = "tags.txt"):
    """A CoNLL file (token TAB tag, blank line between sentences) of ``sentences`` tiny sentences
    with B-person, B-geo-loc and I-geo-loc tags; returns its path.

    Example:
        >>> import tempfile
        >>> open(make_conll_file(tempfile.mkdtemp(), sentences=1)).readline().strip()
        'zoe\\tB-person'
    """
    lines = []
    for i in range(sentences):
        city = ("paris", "berlin", "london")[i % 3]
        who = ("zoe", "anna")[i % 2]
        lines += [f"{who}\tB-person", "visits\tO", f"{city}\tB-geo-loc", ""] if i % 2 else \
            [f"{who}\tB-person", "loved\tO", "new\tB-geo-loc", "york\tI-geo-loc", ""]
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def make_text_preset(folder, *, vocab=REVIEW_VOCAB, num_layers: int = 1, hidden_dim: int = 16,
                     intermediate_dim: int = 32, num_heads: int = 2, sequence_length: int = 16,
                     dropout: float = 0.1):
    """A random BERT saved as a local keras-hub preset (what a recipe's ``model.backbone`` and
    `rank_backbones` accept); returns ``str(folder)``.

    Example:
        >>> import tempfile
        >>> os.path.isfile(os.path.join(make_text_preset(tempfile.mkdtemp()), "config.json"))
        True
    """
    encoder = tiny_text_encoder(vocab=vocab, sequence_length=sequence_length, num_layers=num_layers,
                                num_heads=num_heads, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                                dropout=dropout)
    encoder.backbone.save_to_preset(str(folder))
    encoder.preprocessor.tokenizer.save_to_preset(str(folder))
    return str(folder)
