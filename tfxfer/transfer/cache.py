"""An on-disk cache of what ranking measures once: frozen features per (candidate, data, input size)
and edge cost (params, int8 TFLite size, LiteRT latency) per (architecture, input size, head).

`rank_backbones(..., cache_dir=DIR)` looks here first and stores what it computes, so a second
ranking of the same data (another budget, another primary score, a candidate added) re-extracts
nothing it has seen, and the int8 conversion and LiteRT timing of an architecture at an input size
happen once per machine. Keys are content hashes:

* features: the images' bytes and shape, the backbone (its name and architecture, `architecture_id`:
  two specs of one name that build different networks never share an entry), its weights
  ("imagenet", "random", or a local file's path, size and modification time), the input size,
  whether the ImageNet head ran, the tfxfer and Keras versions, and for random weights the seed of
  their draw.
* extractors (float32 TFLite files, `tfxfer.transfer.lite_extractor`): the backbone, its weights
  (and random seed), the input size and channels, whether the ImageNet head is in it, the tfxfer,
  Keras and TensorFlow versions; features of new data then need no Keras build.
* cost: the backbone, input size, channels, number of outputs and head task, calibration count,
  LiteRT threads and runs, the TensorFlow / LiteRT versions and the machine (processor, CPU count):
  a latency measured elsewhere is never reused.

Entries are written atomically; an unreadable or damaged entry (features that are not a 2-D array
with one row per image, a cost that is not a finite number >= 0) counts as a miss and is rewritten.

Example:
    >>> import numpy as np, tempfile
    >>> from tfxfer.transfer.cache import RankingCache
    >>> from tfxfer.transfer.embeddings import CandidateFeatures
    >>> cache = RankingCache(tempfile.mkdtemp())
    >>> key = cache.feature_key("mobilenet_v2", None, data=cache.fingerprint(np.zeros((2, 8, 8, 3))),
    ...                         input_size=(8, 8), source_head=False)
    >>> cache.get_features(key) is None
    True
    >>> cache.put_features(key, CandidateFeatures(np.ones((2, 4), "float32"), None, "note"))
    >>> hit = cache.get_features(key); hit.features.shape, hit.source_probs, hit.note
    ((2, 4), None, 'note')
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
import types
import zipfile

import numpy as np

from tfxfer.errors import ArgumentTypeError
from tfxfer.transfer.embeddings import CandidateFeatures
from tfxfer.utils.atomic import atomic_path, atomic_write_json

FORMAT_VERSION = 3  # 2: random-weights features are a seeded draw (seed in the key); 3: architecture in the key

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_COST_FIELDS = ("params", "int8_size_mib", "latency_ms", "cost_s")


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:40]


def weights_identity(weights) -> str:
    """"imagenet", "random", or ``file:<path>:<size>:<mtime_ns>`` for a local weights file."""
    if weights is None:
        return "random"
    if weights == "imagenet":
        return "imagenet"
    path = os.path.abspath(os.fspath(weights))
    stat = os.stat(path)
    return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _code_identity(code: types.CodeType) -> str:
    digest = hashlib.sha256(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        digest.update((_code_identity(const) if isinstance(const, types.CodeType) else repr(const)).encode())
    return digest.hexdigest()[:24]


def _identity(value, depth: int = 0):
    """A JSON-able description of a builder (function, ``functools.partial``, closure) or value, the
    same in every process: code and bound values, never a memory address."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 6:
        return type(value).__qualname__
    if isinstance(value, (list, tuple)):
        return [_identity(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _identity(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, functools.partial):
        return {"partial": _identity(value.func, depth + 1), "args": _identity(value.args, depth + 1),
                "keywords": _identity(value.keywords, depth + 1)}
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        cells = []
        for cell in getattr(value, "__closure__", None) or ():
            try:
                cells.append(_identity(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                cells.append(None)
        return {"function": f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}",
                "code": _code_identity(code), "defaults": _identity(getattr(value, "__defaults__", None), depth + 1),
                "kwdefaults": _identity(getattr(value, "__kwdefaults__", None), depth + 1), "closure": cells}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return {"object": f"{type(value).__module__}.{type(value).__qualname__}", "repr": _ADDRESS.sub("", repr(value))}


def architecture_id(backbone) -> str:
    """What identifies a backbone's network without building it: its name, and for a `BackboneSpec`
    every field that changes the network or its input (family, preprocessing, builders and the values
    they bind, such as a width). Two specs that share a name but build different networks differ.

    Example:
        >>> from tfxfer.backbones import get_spec
        >>> architecture_id("mobilenet_v2") == architecture_id(get_spec("mobilenet_v2"))
        True
    """
    from tfxfer.backbones.spec import BackboneSpec

    if isinstance(backbone, str):
        from tfxfer.backbones.catalog import get_spec
        from tfxfer.errors import UnknownNameError

        try:
            backbone = get_spec(backbone)
        except UnknownNameError:
            return _digest({"name": backbone})
    if not isinstance(backbone, BackboneSpec):
        raise ArgumentTypeError("backbone", backbone, "a catalog name or a BackboneSpec")
    return _digest({"name": backbone.name, "family": backbone.family, "preprocessing": backbone.preprocessing,
                    "source": backbone.source, "builder": _identity(backbone.builder),
                    "top_builder": _identity(backbone.top_builder), "after_load": _identity(backbone.after_load)})


def _usable_cost(entry) -> dict | None:
    """The cost fields of a stored entry, or None when one is missing, not a number, negative or not finite."""
    if not isinstance(entry, dict):
        return None
    cost = {}
    for field in _COST_FIELDS:
        value = entry.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return None
        cost[field] = value
    return cost


class RankingCache:
    """Features, extractors and edge costs under ``directory`` (``features/*.npz``,
    ``extractors/*.tflite``, ``cost/*.json``)."""

    def __init__(self, directory):
        if not isinstance(directory, (str, os.PathLike)):
            raise ArgumentTypeError("cache_dir", directory, "a folder path")
        self.directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))

    def __repr__(self) -> str:
        return f"RankingCache({self.directory!r})"

    @staticmethod
    def fingerprint(images) -> str:
        """A content hash of an image array (shape, dtype and bytes)."""
        array = np.ascontiguousarray(images)
        digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
        digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()

    # -- features ---------------------------------------------------------------------------------
    def feature_key(self, backbone, weights, *, data: str, input_size, source_head: bool, seed: int = 0) -> str:
        """``backbone``: catalog name or `BackboneSpec` (its architecture is part of the key)."""
        import keras

        from tfxfer import __version__

        return _digest({"kind": "features", "format": FORMAT_VERSION, "backbone": architecture_id(backbone),
                        "weights": weights_identity(weights), "data": data, "input_size": list(input_size),
                        "source_head": bool(source_head), "tfxfer": __version__, "keras": keras.__version__,
                        "seed": int(seed) if weights is None else None})

    def _feature_path(self, key: str) -> str:
        return os.path.join(self.directory, "features", key + ".npz")

    def get_features(self, key: str, *, rows: int | None = None) -> CandidateFeatures | None:
        """Stored features, or None when missing or damaged (unreadable, not 2-D numbers, or not
        ``rows`` rows when ``rows`` is given): a damaged entry is a miss, rewritten by put_features."""
        path = self._feature_path(key)
        if not os.path.isfile(path):
            return None
        try:
            stored = np.load(path, allow_pickle=False)
            if not isinstance(stored, np.lib.npyio.NpzFile):  # a bare .npy in the .npz's place
                return None
            with stored:
                features = stored["features"]
                probs = stored["source_probs"] if bool(stored["has_probs"]) else None
                note = str(stored["note"])
        except (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile):
            return None
        if features.ndim != 2 or features.dtype.kind not in "biuf" or (rows is not None and len(features) != rows):
            return None
        if probs is not None and (probs.ndim != 2 or probs.dtype.kind not in "biuf" or len(probs) != len(features)):
            return None
        return CandidateFeatures(features=features.astype(np.float32),
                                 source_probs=None if probs is None else probs.astype(np.float64), note=note)

    def put_features(self, key: str, features: CandidateFeatures) -> None:
        probs = features.source_probs
        with atomic_path(self._feature_path(key)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=np.asarray(features.features, np.float32),
                         source_probs=np.zeros((0, 0)) if probs is None else np.asarray(probs, np.float32),
                         has_probs=np.array(probs is not None), note=np.array(features.note))

    # -- feature extractors (TFLite) --------------------------------------------------------------
    def extractor_key(self, backbone, weights, *, input_size, channels: int, source_head: bool,
                      seed: int = 0) -> str:
        """``backbone``: catalog name or `BackboneSpec` (its architecture is part of the key)."""
        import keras
        import tensorflow as tf

        from tfxfer import __version__

        return _digest({"kind": "extractor", "format": FORMAT_VERSION, "backbone": architecture_id(backbone),
                        "weights": weights_identity(weights), "input_size": list(input_size),
                        "channels": int(channels), "source_head": bool(source_head), "tfxfer": __version__,
                        "keras": keras.__version__, "tensorflow": tf.__version__,
                        "seed": int(seed) if weights is None else None})

    def _extractor_path(self, key: str) -> str:
        return os.path.join(self.directory, "extractors", key + ".tflite")

    def get_extractor(self, key: str) -> tuple[bytes, list[int], str] | None:
        """``(content, outputs, note)`` of a stored extractor, or None (missing or unreadable)."""
        path = self._extractor_path(key)
        try:
            with open(path[: -len(".tflite")] + ".json", encoding="utf-8") as f:
                meta = json.load(f)
            with open(path, "rb") as f:
                content = f.read()
            if hashlib.sha256(content).hexdigest() != meta["sha256"]:
                return None
            return content, [int(i) for i in meta["outputs"]], str(meta["note"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put_extractor(self, key: str, content: bytes, outputs, note: str = "") -> None:
        path = self._extractor_path(key)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(content)
        atomic_write_json(path[: -len(".tflite")] + ".json",
                          {"outputs": [int(i) for i in outputs], "note": note,
                           "sha256": hashlib.sha256(content).hexdigest()})

    # -- edge cost --------------------------------------------------------------------------------
    def cost_key(self, backbone, *, input_size, channels: int, num_outputs: int, task: str, threads: int,
                 runs: int, num_calibration: int) -> str:
        """``backbone``: catalog name or `BackboneSpec` (its architecture is part of the key)."""
        import tensorflow as tf

        try:
            from importlib.metadata import version

            litert = version("ai-edge-litert")
        except Exception:  # not installed as a distribution: the TensorFlow version still pins the converter
            litert = None
        return _digest({"kind": "cost", "format": FORMAT_VERSION, "backbone": architecture_id(backbone),
                        "input_size": list(input_size), "channels": int(channels), "num_outputs": int(num_outputs), "task": task,
                        "threads": int(threads), "runs": int(runs), "num_calibration": int(num_calibration),
                        "tensorflow": tf.__version__, "litert": litert, "machine": platform.machine(),
                        "processor": platform.processor(), "cpus": os.cpu_count(), "node": platform.node()})

    def _cost_path(self, key: str) -> str:
        return os.path.join(self.directory, "cost", key + ".json")

    def get_cost(self, key: str) -> dict | None:
        """The stored cost, or None when missing or damaged (unreadable, or a value that is not a
        finite number >= 0): a damaged entry is a miss, rewritten by put_cost."""
        path = self._cost_path(key)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
        except (OSError, ValueError, TypeError):
            return None
        return _usable_cost(entry)

    def put_cost(self, key: str, cost: dict) -> None:
        atomic_write_json(self._cost_path(key), {k: cost[k] for k in _COST_FIELDS})
