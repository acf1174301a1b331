#!/usr/bin/env python3
"""Run a tfxfer .tflite image or text classifier on a device: numpy + LiteRT (+ Pillow), no TensorFlow.

Copy this file, ``model_int8.tflite`` and its sidecar ``model_int8.json`` (labels and input details
written by ``tfxfer.export``) to the device, then:

    pip install numpy pillow ai-edge-litert     # or tflite-runtime on older Raspberry Pi OS
    python3 litert_runner.py model_int8.tflite photo.jpg --top-k 3 --threads 2

Preprocessing is inside the model: the runner decodes the image to RGB (16-bit, 32-bit and float
samples to 8-bit as tfxfer's loaders convert them, palette and alpha images to RGB, a GIF's first
frame), converts it to grayscale for grayscale
models, resizes it exactly as training did (bilinear, half-pixel centres, no antialiasing: numpy,
pixel for pixel what ``tfxfer.data.decode`` does) and feeds raw 0-255 pixels, quantized to the
input's scale / zero point when the model takes uint8 or int8.

Labels come from ``--labels``, else the sidecar, else the metadata tfxfer embeds inside the .tflite
file. The sidecar must belong to the file (its sha256); a file whose sidecar says it failed its
verification gate is refused unless ``--allow-failed``. It prints the top-k classes for each image and the inference time
(median of ``--repeat`` timed runs after one warm-up run). What it prints follows the sidecar's
``output.kind``: probabilities as they are (per label for a sigmoid model), a linear classifier's logits
as their softmax ("probability"), other outputs under their own name ("score", "value": the key in
``--json`` too). ``--json`` prints one JSON document, the
same schema as ``tfxfer predict --json`` (``tfxfer/1``, documented in ``tfxfer/cli/json_output.py``):

    {"schema": "tfxfer/1", "command": "litert_runner", "ok": true, "exit_code": 0, "error": null,
     "model": "model_int8.tflite", "threads": 2,
     "results": [{"image": "photo.jpg", "top": [{"index": 3, "label": "cat", "probability": 0.91}, ...],
                  "inference_ms": 3.4}]}

An input it cannot read (not an image, truncated, a header declaring more than ``MAX_IMAGE_PIXELS``
pixels), or a text that is not UTF-8, gets ``"error": {"type": ..., "message": ...}`` instead of ``"top"``
(exit code 1) and the other inputs still run; a fatal error (missing model, a file LiteRT cannot load, a damaged sidecar or
labels file, ``--threads 0``) prints one line on stderr and, with ``--json``, a document with
``"ok": false`` and the ``error`` object (exit code 1, usage errors 2), so a script never parses a
traceback.

Text models (``tfxfer.text.export_text_tflite``; their sidecar says ``"format":
"tfxfer-text-tflite"``) take token ids, so the arguments after the model are texts, tokenized by
the dependency-free tokenizer the sidecar's ``tokenizer.type`` names: ``wordpiece_tokenizer.py``
(BERT family) or ``bpe_tokenizer.py`` (RoBERTa); copy that file and the model's own tokenizer files
(``<stem>.vocab.txt``, or ``<stem>.vocab.json`` + ``<stem>.merges.txt``: the names the sidecar's
``tokenizer`` section gives) beside the model and this runner:

    python3 litert_runner.py sentiment.tflite "A fine film." "Dull." --top-k 2

The sidecar records each tokenizer file's sha256 (``tokenizer.sha256``); a tokenizer file that is
missing or belongs to another model (another vocabulary would give wrong token ids, silently) is a
fatal error before anything runs, like a sidecar that belongs to another model file. Sidecars written
before tfxfer recorded these hashes are used as before, unchecked.

Models whose tokenizer is not reproduced there (SentencePiece: DeBERTa-v3, ALBERT) have
``"tokenizer": null`` and need their own tokenizer; the runner says so and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

TEXT_FORMAT = "tfxfer-text-tflite"
LLM_FORMAT = "tfxfer-llm-tflite"  # a causal LM's decoder: export/llm_runner.py runs it
JSON_SCHEMA = "tfxfer/1"  # tfxfer/cli/json_output.py: the same document as `tfxfer predict --json`
TOKENIZER_MODULES = {"wordpiece": ("wordpiece_tokenizer", "WordPieceTokenizer"),
                     "bpe": ("bpe_tokenizer", "BytePairTokenizer")}
#: Images whose header declares more pixels (width x height) are refused before decoding: the same
#: limit as tfxfer's loaders (tfxfer/data/scan.py MAX_IMAGE_PIXELS, Pillow's own default at 1x).
MAX_IMAGE_PIXELS = 89_478_485


class ImageError(ValueError):
    """One input image cannot be used (corrupt, not an image, too large); the others still run."""


def load_interpreter_class():
    """LiteRT's Interpreter, or tflite-runtime's on devices that only have that."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            sys.exit("Install a LiteRT runtime: pip install ai-edge-litert (or tflite-runtime)")
    return Interpreter


def open_interpreter(model_path: str, threads: int):
    """A LiteRT interpreter on ``model_path``; a file LiteRT cannot load is a one-line fatal error."""
    interpreter_class = load_interpreter_class()
    try:
        return interpreter_class(model_path=model_path, num_threads=threads)
    except (ValueError, RuntimeError) as exc:  # "not a valid Flatbuffer buffer", unsupported ops
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.exit(f"{model_path} is not a TFLite model LiteRT can load ({reason})")


def read_json_object(path: str, what: str) -> dict:
    """The JSON object in ``path``; a file that is not one (damaged, a list) is a one-line fatal error."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        sys.exit(f"{path} is not a valid {what} ({type(exc).__name__}: {exc}); copy the one exported with the "
                 "model, or remove it")
    if not isinstance(value, dict):
        sys.exit(f"{path} is not a valid {what}: expected a JSON object, got a JSON {type(value).__name__}")
    return value


def sidecar_path(model_path: str) -> str:
    stem, ext = os.path.splitext(model_path)
    return (stem if ext == ".tflite" else model_path) + ".json"


METADATA_NAME = "tfxfer_metadata"  # tfxfer/export/flatbuffer.py


def read_embedded_metadata(model_path: str) -> dict:
    """The JSON tfxfer embeds in the .tflite flatbuffer (``Model.metadata`` entry "tfxfer_metadata"),
    read with the standard library; {} if there is none."""
    import struct

    with open(model_path, "rb") as f:
        buf = f.read()
    try:
        def u32(offset):
            return struct.unpack_from("<I", buf, offset)[0]

        def field(table, index):  # absolute offset of a table's field, or None
            vtable = table - struct.unpack_from("<i", buf, table)[0]
            slot = 4 + 2 * index
            if slot >= struct.unpack_from("<H", buf, vtable)[0]:
                return None
            offset = struct.unpack_from("<H", buf, vtable + slot)[0]
            return table + offset if offset else None

        def vector(offset):
            start = offset + u32(offset)
            return start + 4, u32(start)

        root = u32(0)
        metadata, buffers = field(root, 6), field(root, 4)  # Model.metadata, Model.buffers
        if metadata is None or buffers is None:
            return {}
        start, count = vector(metadata)
        for i in range(count):
            entry = start + 4 * i + u32(start + 4 * i)
            name_at = field(entry, 0)
            name_start, name_len = vector(name_at)
            if buf[name_start: name_start + name_len].decode("utf-8") != METADATA_NAME:
                continue
            buffer_index = u32(field(entry, 1))
            b_start, _ = vector(buffers)
            table = b_start + 4 * buffer_index + u32(b_start + 4 * buffer_index)
            data_at = field(table, 0)
            if data_at is None:
                return {}
            d_start, d_len = vector(data_at)
            value = json.loads(buf[d_start: d_start + d_len].decode("utf-8"))
            return value if isinstance(value, dict) else {}
    except (struct.error, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return {}


def check_sidecar(model_path: str, sidecar: dict, *, allow_failed: bool = False) -> None:
    """Refuse a sidecar that belongs to another file (sha256) and a file that failed its gate."""
    import hashlib

    if not sidecar:
        return
    expected = sidecar.get("sha256")
    if expected is not None and not isinstance(expected, str):
        sys.exit(f"{sidecar_path(model_path)} is not a valid sidecar: its sha256 is not a string "
                 f"(got {type(expected).__name__})")
    if expected:
        with open(model_path, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
        if actual != expected:
            sys.exit(f"{sidecar_path(model_path)} belongs to another file (sha256 {expected[:12]}..., "
                     f"this file {actual[:12]}...): copy the sidecar exported with this file, or remove it")
    gate = sidecar.get("gate")
    if isinstance(gate, dict) and gate.get("passed") is False and not allow_failed:
        reasons = "; ".join(str(r) for r in gate.get("failures") or []) or "see the export report"
        sys.exit(f"{model_path} failed its verification gate ({reasons}); it may not behave like the model "
                 "it was exported from. Pass --allow-failed to run it anyway")


def check_tokenizer_files(model_path: str, sidecar: dict) -> None:
    """Refuse tokenizer files that are missing or not the ones exported with the model: the sidecar's
    ``tokenizer.sha256`` (``{"vocabulary": hex, "merges": hex}``) against the files its ``tokenizer``
    section names (paths relative to the sidecar). A sidecar without these hashes (written by an older
    tfxfer) is not checked."""
    import hashlib

    config = sidecar.get("tokenizer")
    if not isinstance(config, dict) or config.get("sha256") is None:
        return
    where = sidecar_path(model_path)
    digests = config["sha256"]
    if not isinstance(digests, dict):
        sys.exit(f"{where} is not a valid sidecar: its tokenizer.sha256 is not an object "
                 f"(got {type(digests).__name__})")
    folder = os.path.dirname(os.path.abspath(where))
    for key, expected in digests.items():
        name = config.get(key)
        if not isinstance(name, str) or not isinstance(expected, str):
            sys.exit(f"{where} is not a valid sidecar: its tokenizer.sha256 names {key!r}, but tokenizer.{key} "
                     f"is {name!r} and its sha256 {expected!r} (expected a file name and a hex digest)")
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                actual = hashlib.sha256(f.read()).hexdigest()
        except OSError as exc:
            sys.exit(f"Tokenizer file {path} ({key}) cannot be read ({type(exc).__name__}: {exc}): copy the "
                     f"{key} file exported with this model beside its sidecar")
        if actual != expected:
            sys.exit(f"Tokenizer file {path} ({key}) belongs to another model (sha256 {actual[:12]}..., the "
                     f"sidecar {where} expects {expected[:12]}...): its token ids would be wrong; copy the "
                     f"{key} file exported with this model")


def load_labels(model_path: str, labels_path: str | None, num_classes: int) -> list[str]:
    """Class names from ``--labels`` (sidecar JSON or one name per line), else the sidecar, else the
    metadata embedded in the file; index numbers (with a warning) if none names them."""
    path = labels_path or sidecar_path(model_path)
    if not os.path.exists(path):
        if labels_path:
            sys.exit(f"Labels file not found: {labels_path}")
        names = read_embedded_metadata(model_path).get("class_names")
        if names:
            if len(names) != num_classes:
                sys.exit(f"{model_path} embeds {len(names)} labels but the model has {num_classes} outputs")
            return [str(n) for n in names]
        print(f"warning: no labels for {model_path} (no sidecar, none embedded, no --labels): "
              "classes are shown as index numbers", file=sys.stderr)
        return [str(i) for i in range(num_classes)]
    if path.endswith(".json"):
        names = read_json_object(path, "sidecar").get("class_names")
        if names is not None and not isinstance(names, list):
            sys.exit(f"{path}: class_names must be a list of names, got a JSON {type(names).__name__}")
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            sys.exit(f"Labels file {path} cannot be read ({type(exc).__name__}: {exc})")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        sys.exit(f"{path} has {len(names)} labels but the model has {num_classes} outputs")
    return [str(n) for n in names]


GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # tfxfer/data/decode.py


def decode_rgb(path: str) -> np.ndarray:
    """uint8 ``(h, w, 3)``: the first frame, EXIF orientation applied, 16-bit samples reduced to 8 bits
    (a PNG TensorFlow decodes: the high byte; a TIFF or rotated PNG: / 257, and 32-bit / float TIFFs
    scaled, as tfxfer/data/scan.py ``to_rgb_png`` converts them for tfxfer's loaders), palette / gray / alpha / CMYK images converted to RGB (alpha dropped), as tfxfer's
    loaders feed ``tf.io.decode_image(channels=3)``.

    Raises:
        OSError: the file cannot be read, or is not an image Pillow knows.
        ImageError: the header declares more than `MAX_IMAGE_PIXELS` pixels (refused before decoding,
            as tfxfer's loaders do), or the image is corrupt; the message starts with the reason
            (``too_large``, ``corrupt``) as tfxfer's skip reasons do.
    """
    import warnings

    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():  # Pillow warns above its own limit; MAX_IMAGE_PIXELS is checked here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageError(f"too_large: the header declares {width}x{height} = {width * height} "
                                     f"pixels, more than MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS}")
                if width < 1 or height < 1:
                    raise ImageError(f"corrupt: the header declares a {width}x{height} image")
                opened.seek(0)
                upright = _orientation(opened) == 1
                image = ImageOps.exif_transpose(opened)  # upright, as tfxfer's loaders and `tfxfer predict` read it
                mode = image.mode
                if mode.startswith("I;16") or mode in ("I", "F"):  # Pillow's convert would clip to white / black
                    if opened.format == "PNG" and upright and mode != "F":
                        # TensorFlow decodes these PNGs itself (tfxfer/data/scan.py _TF_EXACT): the high byte
                        gray = np.clip(np.asarray(image).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
                    else:  # scan.to_rgb_png, which converts them (TIFF, rotated PNG) for tfxfer's loaders
                        gray = _scaled_gray(np.asarray(image, dtype=np.float64), mode)
                    return np.repeat(gray[..., None], 3, axis=-1)
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError):  # ImageError, UnidentifiedImageError, truncated files, bad modes
        raise
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit, raised by Image.open itself
        raise ImageError(f"too_large: {exc}") from None
    except Exception as exc:  # Pillow's plugins also raise SyntaxError, EOFError, struct.error, ...
        raise ImageError(f"corrupt: {type(exc).__name__}: {exc}") from None


def _orientation(image) -> int:
    """The EXIF orientation tag (1 if none or damaged), as tfxfer/data/scan.py reads it."""
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # a damaged EXIF block is ignored, as every viewer does
        return 1


def _scaled_gray(values: np.ndarray, mode: str) -> np.ndarray:
    """uint8 gray from 16-bit / 32-bit / float samples: tfxfer/data/scan.py ``to_rgb_png``'s rules
    (16-bit / 257; 32-bit / 257 when above 255, else as is; float in [0, 1] * 255, else as is)."""
    if mode.startswith("I;16"):
        values = values / 257.0
    elif mode == "I":
        values = values / 257.0 if values.max(initial=0) > 255 else values
    elif values.max(initial=0) <= 1.0:
        values = values * 255.0
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def resize_bilinear(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(method="bilinear", antialias=False)`` in numpy: half-pixel centres, float32."""
    in_h, in_w = pixels.shape[:2]
    if (in_h, in_w) == (height, width):
        return pixels.astype(np.float32)

    def axis(out_size, in_size):
        scale = np.float32(in_size) / np.float32(out_size)
        src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(src)
        lower = np.clip(floor, 0, in_size - 1).astype(np.int64)
        upper = np.clip(np.ceil(src), 0, in_size - 1).astype(np.int64)
        return lower, upper, (src - floor).astype(np.float32)

    y0, y1, ly = axis(height, in_h)
    x0, x1, lx = axis(width, in_w)
    image = pixels.astype(np.float32)
    lx = lx[None, :, None]
    top = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * lx
    bottom = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * lx
    return top + (bottom - top) * ly[:, None, None]


def load_image(path: str, height: int, width: int, channels: int) -> np.ndarray:
    """``(1, height, width, channels)`` float32 raw pixels, decoded and resized as tfxfer.data.decode does."""
    rgb = decode_rgb(path)
    if channels == 1:
        pixels = np.round(rgb.astype(np.float32) @ GRAY_WEIGHTS)[..., None]
    else:
        pixels = rgb.astype(np.float32)
    resized = resize_bilinear(pixels, height, width)
    return np.clip(np.round(resized), 0.0, 255.0).astype(np.float32)[None]


def to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return pixels.astype(dtype)
    scale, zero_point = detail["quantization"]
    if scale:
        pixels = np.round(pixels / scale) + zero_point
    info = np.iinfo(dtype)
    return np.clip(pixels, info.min, info.max).astype(dtype)


def from_output(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * (scale or 1.0)


#: What the runner shows for each ``output.kind`` of a tfxfer sidecar: ``(transform, name of the value)``.
#: A linear classifier's logits are shown as their softmax (what tfxfer's serving signature gives as
#: ``probabilities``); outputs that are not probabilities keep their values under an honest name.
OUTPUT_VALUES = {
    "probabilities": (None, "probability"),        # softmax
    "label_probabilities": (None, "probability"),  # sigmoid: one independent probability per label
    "logits": ("softmax", "probability"),          # linear classifier: softmax of the logits
    "scores": (None, "score"),                     # another output layer: ranked as class scores
    "values": (None, "value"),                     # regression outputs
}


def shown_values(values: np.ndarray, kind) -> tuple[np.ndarray, str]:
    """``(values to rank and print, their name)`` for an output of the sidecar's ``output.kind``
    (`OUTPUT_VALUES`; a sidecar without it, or no sidecar: the values as they are, "probability")."""
    transform, name = OUTPUT_VALUES.get(kind, (None, "probability"))
    if transform == "softmax":
        shifted = np.exp(values - values.max(axis=-1, keepdims=True))
        values = shifted / shifted.sum(axis=-1, keepdims=True)
    return values, name


class Classifier:
    """A loaded .tflite classifier: ``classify(image_path)`` -> (probabilities, milliseconds); the
    values are what the sidecar's ``output.kind`` says (`shown_values`: logits become their softmax,
    scores stay scores; ``value_name`` names them)."""

    def __init__(self, model_path: str, *, threads: int = 1, labels_path: str | None = None,
                 allow_failed: bool = False):
        sidecar = read_sidecar(model_path)
        check_sidecar(model_path, sidecar, allow_failed=allow_failed)
        output = sidecar.get("output")
        self.kind = output.get("kind") if isinstance(output, dict) else None
        self.value_name = shown_values(np.zeros(1, np.float32), self.kind)[1]
        self.interpreter = open_interpreter(model_path, threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        shape = [int(d) for d in self.input["shape"]]
        if len(shape) != 4 or shape[-1] not in (1, 3) or len(self.output["shape"]) != 2:
            sys.exit(f"{model_path} is not an image classifier: it takes {shape} and returns "
                     f"{[int(d) for d in self.output['shape']]}, not (1, height, width, 1 or 3) -> (1, classes) "
                     "(a text model needs its sidecar beside it)")
        if shape[0] != 1:
            self.interpreter.resize_tensor_input(self.input["index"], [1, *shape[1:]])
        self.interpreter.allocate_tensors()
        _, self.height, self.width, self.channels = shape
        self.labels = load_labels(model_path, labels_path, int(self.output["shape"][-1]))

    def classify(self, image_path: str, *, repeat: int = 1):
        pixels = load_image(image_path, self.height, self.width, self.channels)
        data = to_input(pixels, self.input)
        self.interpreter.set_tensor(self.input["index"], data)
        self.interpreter.invoke()  # warm-up
        times = []
        for _ in range(max(1, repeat)):
            start = time.perf_counter()
            self.interpreter.set_tensor(self.input["index"], data)
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self.output["index"])
            times.append((time.perf_counter() - start) * 1000.0)
        return shown_values(from_output(raw, self.output)[0], self.kind)[0], float(np.median(times))


def read_sidecar(model_path: str) -> dict:
    """The sidecar ``<stem>.json`` beside the model ({} if there is none); a damaged one is fatal."""
    path = sidecar_path(model_path)
    if not os.path.exists(path):
        return {}
    return read_json_object(path, "sidecar")


def load_tokenizer(model_path: str, sidecar: dict):
    """The export/ tokenizer the sidecar names (its module beside the model or this runner)."""
    config = sidecar.get("tokenizer")
    if not isinstance(config, dict):
        sys.exit(f"{sidecar_path(model_path)} names no tokenizer: this model's tokenizer (e.g. SentencePiece for "
                 "DeBERTa-v3 / ALBERT) is not reproduced by export/; tokenize with the model's own tokenizer "
                 "and feed the token ids to LiteRT yourself")
    kind = config.get("type")
    if kind not in TOKENIZER_MODULES:
        sys.exit(f"Unknown tokenizer type {kind!r} in {sidecar_path(model_path)} (known: {sorted(TOKENIZER_MODULES)})")
    module_name, class_name = TOKENIZER_MODULES[kind]
    for folder in (os.path.dirname(os.path.abspath(model_path)), os.path.dirname(os.path.abspath(__file__))):
        if os.path.isfile(os.path.join(folder, module_name + ".py")) and folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = __import__(module_name)
    except ImportError:
        sys.exit(f"Copy {module_name}.py (it is in the export/ folder of tfxfer) beside the model or this runner")
    return getattr(module, class_name).from_config(sidecar_path(model_path))


class TextClassifier:
    """A loaded text .tflite: ``classify(text)`` -> (probabilities, milliseconds) from a raw string."""

    def __init__(self, model_path: str, *, threads: int = 1, labels_path: str | None = None,
                 allow_failed: bool = False):
        self.sidecar = read_sidecar(model_path)
        check_sidecar(model_path, self.sidecar, allow_failed=allow_failed)
        check_tokenizer_files(model_path, self.sidecar)
        self.tokenizer = load_tokenizer(model_path, self.sidecar)
        self.length = int(self.sidecar["sequence_length"])
        self.interpreter = open_interpreter(model_path, threads)
        self.inputs = {}
        for detail in self.interpreter.get_input_details():
            key = next((i["name"] for i in self.sidecar.get("inputs", []) if i.get("tensor") == detail["name"]), None)
            key = key or next((k for k in ("token_ids", "padding_mask", "segment_ids") if k in detail["name"]), None)
            if key is None:
                sys.exit(f"TFLite input {detail['name']!r} is none of token_ids / padding_mask / segment_ids")
            self.interpreter.resize_tensor_input(detail["index"], [1, self.length])
            self.inputs[key] = detail
        self.interpreter.allocate_tensors()
        self.output = self.interpreter.get_output_details()[0]
        self.task = self.sidecar.get("task", "classification")
        self.labels = load_labels(model_path, labels_path, int(self.output["shape"][-1]))

    def classify(self, text: str, *, repeat: int = 1, name: str = "text"):
        """Raises:
            ValueError: ``text`` is not UTF-8 (a lone surrogate: what Python makes of a non-UTF-8
                argument), naming ``name``."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{name} is not UTF-8 text: {shown_text(text[exc.start:exc.end])} in "
                             f"{shown_text(text)}") from None
        packed = self.tokenizer.pack([text], self.length)
        feed = {k: np.asarray(packed.get(k, [[0] * self.length]), dtype=np.dtype(d["dtype"]))
                for k, d in self.inputs.items()}
        times = []
        for _ in range(max(1, repeat) + 1):  # the first run is the warm-up
            start = time.perf_counter()
            for k, d in self.inputs.items():
                self.interpreter.set_tensor(d["index"], feed[k])
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self.output["index"])
            times.append((time.perf_counter() - start) * 1000.0)
        probabilities = from_output(raw, self.output)[0]
        if self.task == "token_classification":  # one row per real token (<s>/[CLS] ... </s>/[SEP])
            probabilities = probabilities[: int(sum(packed["padding_mask"][0]))]
        return probabilities, float(np.median(times[1:]))


def shown_text(text: str) -> str:
    """``text`` printable as UTF-8: a non-UTF-8 byte of an argument (a lone surrogate) as ``\\xe9``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def run_text(args) -> int:
    classifier = TextClassifier(args.model, threads=args.threads, labels_path=args.labels,
                                allow_failed=args.allow_failed)
    results = []
    for i, text in enumerate(args.inputs):
        try:
            probabilities, ms = classifier.classify(text, repeat=args.repeat, name=f"inputs[{i}]")
        except ValueError as exc:  # a text the tokenizer refuses (not UTF-8): report, go on
            results.append({"text": shown_text(text), "error": {"type": type(exc).__name__, "message": str(exc)}})
            continue
        if probabilities.ndim == 1:
            order = np.argsort(-probabilities)[: args.top_k]
            top = [{"index": int(i), "label": classifier.labels[i], "probability": float(probabilities[i])}
                   for i in order]
            results.append({"text": text, "top": top, "probabilities": probabilities.tolist(), "inference_ms": ms})
        else:
            tags = [classifier.labels[i] for i in probabilities.argmax(-1)]
            results.append({"text": text, "tags": tags, "probabilities": probabilities.tolist(), "inference_ms": ms})
    failed = sum("error" in r for r in results)
    if args.json:
        error = {"type": "InputError", "message": f"{failed} of {len(results)} inputs could not be read"} if failed \
            else None
        print_document(exit_code=1 if failed else 0, error=error, model=args.model, threads=args.threads,
                       results=results)
    else:
        for r in results:
            if "error" in r:
                print(f"{r['text']!r}: ERROR {r['error']['type']}: {r['error']['message']}")
                continue
            shown = (", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"]) if "top" in r
                     else " ".join(r["tags"]))
            print(f"{r['text']!r}: {shown}  ({r['inference_ms']:.2f} ms, {args.threads} thread(s))")
    return 1 if failed else 0


def run(argv) -> int:
    """Parse ``argv`` and classify its inputs; fatal errors raise (see `main`)."""
    parser = _Parser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("model", help="the .tflite file (its sidecar <stem>.json is read if present)")
    parser.add_argument("inputs", nargs="+", metavar="input",
                        help="image files (JPEG, PNG, ...), or texts for a tfxfer text model")
    parser.add_argument("--labels", help="labels: a tfxfer sidecar JSON or a text file, one name per line")
    parser.add_argument("--top-k", type=_at_least_one, default=3)
    parser.add_argument("--threads", type=_thread_count, default=1, help=f"1 to {MAX_THREADS}")
    parser.add_argument("--repeat", type=_repeat_count, default=10,
                        help=f"timed runs per input, 1 to {MAX_REPEAT} (median reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--allow-failed", action="store_true",
                        help="run a file whose sidecar says it failed its verification gate")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f"model file not found: {args.model}")
    kind = read_sidecar(args.model).get("format")
    if kind == TEXT_FORMAT:
        return run_text(args)
    if kind == LLM_FORMAT:
        sys.exit(f"{args.model} is a causal-LM decoder, not a classifier: run llm_runner.py "
                 f"{sidecar_path(args.model)} \"your prompt\"")

    classifier = Classifier(args.model, threads=args.threads, labels_path=args.labels,
                            allow_failed=args.allow_failed)
    results = []
    for path in args.inputs:
        try:
            probabilities, ms = classifier.classify(path, repeat=args.repeat)
        except (OSError, ValueError) as exc:  # unreadable or non-image file: report, go on
            results.append({"image": path, "error": {"type": type(exc).__name__, "message": str(exc)}})
            continue
        order = np.argsort(-probabilities)[: args.top_k]
        top = [{"index": int(i), "label": classifier.labels[i], classifier.value_name: float(probabilities[i])}
               for i in order]
        results.append({"image": path, "top": top, "inference_ms": ms})

    failed = sum("error" in r for r in results)
    if args.json:
        error = {"type": "InputError", "message": f"{failed} of {len(results)} inputs could not be read"} if failed \
            else None
        print_document(exit_code=1 if failed else 0, error=error, model=args.model, threads=args.threads,
                       results=results)
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: ERROR {r['error']['type']}: {r['error']['message']}")
                continue
            ranked = ", ".join(f"{t['label']} {t[classifier.value_name]:.3f}" for t in r["top"])
            print(f"{r['image']}: {ranked}  ({r['inference_ms']:.2f} ms, {args.threads} thread(s))")
    return 1 if failed else 0


def print_document(*, exit_code: int = 0, error: dict | None = None, **fields) -> None:
    """Print one ``tfxfer/1`` JSON document (see the module docstring) on stdout."""
    doc = {"schema": JSON_SCHEMA, "command": "litert_runner", "ok": exit_code == 0, "exit_code": exit_code,
           "error": None if error is None else {**error, "exit_code": exit_code}, **fields}
    print(json.dumps(doc, ensure_ascii=False))


class _UsageError(Exception):
    pass


#: Upper bounds of --threads (tfxfer's own MAX_THREADS, tfxfer/recipes/config_checks.py: LiteRT
#: crashes far above it) and --repeat (timed runs per input).
MAX_THREADS = 1024
MAX_REPEAT = 10_000


def _count(text: str, upper: int | None = None) -> int:
    """An integer in [1, upper] (checked before the model loads), else an argparse type error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {value}")
    if upper is not None and value > upper:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, {upper}]. Received: {value}")
    return value


def _at_least_one(text: str) -> int:
    """argparse type of --top-k: an integer >= 1."""
    return _count(text)


def _thread_count(text: str) -> int:
    """argparse type of --threads: an integer in [1, MAX_THREADS]."""
    return _count(text, MAX_THREADS)


def _repeat_count(text: str) -> int:
    """argparse type of --repeat: an integer in [1, MAX_REPEAT]."""
    return _count(text, MAX_REPEAT)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


def main(argv=None) -> int:
    """The runner's entry point: `run`, with every failure a one-line message on stderr and, when
    ``--json`` is given, also a JSON document on stdout; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # options are not abbreviated (allow_abbrev=False), and after "--" every argument is an input
    wants_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    try:
        return run(argv)
    except _UsageError as exc:
        print(f"litert_runner.py: error: {exc}", file=sys.stderr)
        if wants_json:
            print_document(exit_code=2, error={"type": "UsageError", "message": str(exc)})
        return 2
    except SystemExit as exc:  # sys.exit("message") above: a fatal error with exit status 1
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
        if wants_json:
            print_document(exit_code=1, error={"type": "RunnerError", "message": exc.code})
        return 1
    except KeyboardInterrupt:
        print("litert_runner.py: interrupted", file=sys.stderr)
        if wants_json:
            print_document(exit_code=130, error={"type": "KeyboardInterrupt", "message": "interrupted"})
        return 130
    except Exception as exc:  # anything unforeseen: still one line (and one document), never a traceback
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"litert_runner.py: error: {type(exc).__name__}: {message}", file=sys.stderr)
        if wants_json:
            print_document(exit_code=1, error={"type": type(exc).__name__, "message": message})
        return 1


if __name__ == "__main__":
    sys.exit(main())
