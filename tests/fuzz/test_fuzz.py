"""Property-based fuzzing (Hypothesis) of every reader of untrusted input: the recipe parser and
schema, the ``--set`` overrides, the CSV/TSV/JSONL and CoNLL readers, and the image scanner.

The property is the same everywhere: any input ends in a result, a counted skip or a typed tfxfer
error (`TfxferError`), never another exception, and in bounded time. Budgets are small and the
runs derandomized (the same examples every run) so CI stays fast and repeatable; raise
``FUZZ_EXAMPLES`` locally for a longer hunt, e.g. ``FUZZ_EXAMPLES=2000 pytest tests/fuzz``.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tfxfer.errors import TfxferError  # noqa: E402

N = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FAST = settings(max_examples=N, deadline=datetime.timedelta(seconds=2), derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=max(N // 2, 10), deadline=datetime.timedelta(seconds=10), derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# -- recipes ---------------------------------------------------------------------------------------
SECTIONS = {"data": ["source", "validation_split", "test_split", "max_train", "augment", "on_leakage"],
            "model": ["backbone", "weights", "input_size", "dropout", "hidden_units", "sequence_length"],
            "train": ["batch_size", "head_epochs", "epochs", "base_lr", "layer_decay", "stages", "optimizer"],
            "export": ["variants", "deliver", "thresholds", "threads", "bench_runs"],
            "report": ["misclassified", "reliability_bins"], "distill": ["enabled", "alpha", "temperature"]}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


@st.composite
def recipes(draw):
    raw = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), unique=True, max_size=4)):
        keys = draw(st.lists(st.sampled_from(SECTIONS[section] + ["typo_key"]), unique=True, max_size=4))
        raw[section] = {k: draw(values) for k in keys}
    if draw(st.booleans()):
        raw.setdefault("data", {})["source"] = "animal_mnist"
    return raw


def _config_outcome(fn):
    from tfxfer.recipes.config import RunConfig

    try:
        result = fn()
    except TfxferError:
        return "error"
    assert isinstance(result, RunConfig)
    return "ok"


@FAST
@given(recipes())
def test_any_structured_recipe_loads_or_is_a_config_error(raw):
    import yaml

    from tfxfer.recipes.config_loader import load_config

    text = yaml.safe_dump(raw, allow_unicode=True)
    _config_outcome(lambda: load_config(text=text))


@FAST
@given(st.text(max_size=300))
def test_any_recipe_text_loads_or_is_a_config_error(text):
    from tfxfer.recipes.config_loader import load_config

    _config_outcome(lambda: load_config(text=text))


@FAST
@given(st.binary(max_size=300))
def test_any_recipe_bytes_load_or_are_a_config_error(data):
    from tfxfer.recipes.config_loader import load_config
    from tfxfer.recipes.recipe_yaml import decode_recipe

    try:
        text = decode_recipe(data)
    except TfxferError:
        return
    _config_outcome(lambda: load_config(text=text))


@FAST
@given(st.lists(st.text(max_size=60), max_size=4))
def test_any_overrides_apply_or_are_a_config_error(items):
    from tfxfer.recipes.config_loader import load_config

    _config_outcome(lambda: load_config(text="data: {source: animal_mnist}", overrides=items))


@FAST
@given(st.lists(st.tuples(st.sampled_from([f"{s}.{k}" for s, ks in SECTIONS.items() for k in ks]),
                          st.one_of(st.integers(-5, 5), st.floats(), st.sampled_from(["-1", ".nan", "[0]", "x"]))),
                max_size=3))
def test_overrides_of_real_keys_are_range_checked(items):
    """A recipe that loads has only in-range numbers (no negative rate or epoch, no NaN)."""
    import math

    from tfxfer.recipes.config_loader import load_config

    try:
        cfg = load_config(text="data: {source: animal_mnist}", overrides=[f"{k}={v}" for k, v in items])
    except TfxferError:
        return
    t = cfg.train
    assert t.base_lr > 0 and math.isfinite(t.base_lr) and t.epochs >= 0 and t.head_epochs >= 0
    assert 0 <= cfg.data.validation_split < 1 and 0 <= cfg.model.dropout < 1
    assert all(n >= 1 for n in cfg.export.threads) and cfg.report.reliability_bins >= 1


# -- text tables -----------------------------------------------------------------------------------
cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    ['"', '""', '"a', 'a"b', "\t", ",", "\n", "\r\n", "\u2028", "\x85", "\ufeff", "pos", "neg", " "])


# Every example's files go below one folder that is removed when the test process ends (hundreds of
# examples per run used to leave a folder each in the system's temporary directory).
_ROOT = tempfile.TemporaryDirectory(prefix="tfxfer-fuzz-")


def _write(suffix, content: str | bytes) -> str:
    folder = tempfile.mkdtemp(dir=_ROOT.name)
    path = os.path.join(folder, "t" + suffix)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


def _texts_outcome(path, **kwargs):
    from tfxfer.data import load_texts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = load_texts(path, **kwargs)
        except TfxferError:
            return "error"
    used = sum(len(s.x) for s in (data.train, data.val, data.test) if s is not None)
    # every row is used or counted (a skipped row has a reason and a file:line)
    assert used + len(data.summary.skipped) == data.summary.scanned
    assert all(":" in s["path"] and s["reason"] for s in data.summary.skipped)
    return "ok"


@FAST
@given(st.sampled_from([".csv", ".tsv"]), st.lists(st.lists(cells, min_size=0, max_size=3), max_size=12))
def test_any_csv_or_tsv_table_reads_without_losing_rows(suffix, rows):
    sep = "\t" if suffix == ".tsv" else ","
    content = "text" + sep + "label\n" + "\n".join(sep.join(r) for r in rows)
    _texts_outcome(_write(suffix, content))


@FAST
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"text": st.one_of(st.text(max_size=20), scalars), "label": values}),
    st.text(max_size=30)), max_size=12))
def test_any_jsonl_reads_without_losing_rows(rows):
    lines = [json.dumps(r, ensure_ascii=False) if isinstance(r, dict) else r.replace("\n", " ") for r in rows]
    _texts_outcome(_write(".jsonl", "\n".join(lines)))


@FAST
@given(st.binary(max_size=400), st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_any_bytes_as_a_text_table(data, suffix):
    _texts_outcome(_write(suffix, data))


@FAST
@given(st.lists(st.one_of(st.tuples(cells, st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "", "x y"])),
                          st.just(None)), max_size=40))
def test_any_conll_file_reads_or_is_a_data_error(lines):
    from tfxfer.data import load_conll

    content = "\n".join("" if item is None else f"{item[0]}\t{item[1]}" for item in lines)
    path = _write(".conll", content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_conll(path)
        except TfxferError:
            pass


# -- images ---------------------------------------------------------------------------------------
def _valid_images():
    import numpy as np
    from PIL import Image

    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        buffer = io.BytesIO()
        Image.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(6, 8, 3)).save(buffer, format=fmt)
        out.append(buffer.getvalue())
    return out


VALID = _valid_images()


@st.composite
def image_bytes(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@SLOW
@given(st.lists(st.one_of(image_bytes(), st.binary(max_size=64)), min_size=1, max_size=4))
def test_any_image_bytes_are_scanned_to_ok_converted_or_a_counted_skip(blobs):
    from tfxfer.data import SKIP_REASONS, scan_images

    folder = tempfile.mkdtemp(dir=_ROOT.name)
    paths = []
    for i, blob in enumerate(blobs):
        paths.append(os.path.join(folder, f"{i}.png"))
        with open(paths[-1], "wb") as f:
            f.write(blob)
    result = scan_images(paths)
    assert len(result.ok) + len(result.skipped) == len(paths)
    assert all(s["reason"] in SKIP_REASONS for s in result.skipped)


@FAST
@given(st.one_of(image_bytes(), st.binary(max_size=128)))
def test_any_image_bytes_are_checked_to_ok_converted_or_a_data_error(blob):
    """The one-image check predict, serving and device runners can share (no TensorFlow)."""
    from tfxfer.data import SKIP_REASONS, check_image_bytes

    try:
        status, data = check_image_bytes(blob)
    except TfxferError as exc:
        assert str(exc).split(":")[0] in SKIP_REASONS
        return
    assert status in ("ok", "convert") and data
