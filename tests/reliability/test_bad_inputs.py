"""The bad-input suite: distinct broken, hostile or wrong inputs through the public API and the CLI.

Each case builds its inputs inside the run directory and asserts a typed tfxfer error with a
helpful message, or a documented skip (the loaders' ``summary.skipped`` reasons, see
`tfxfer.data.SKIP_REASONS`). Known gaps owned elsewhere are ``xfail(strict=True)`` with the reason:
they fail loudly once fixed, so the mark has to be removed. After every case a guard checks that no
file outside the run directory changed (bait files beside it, the other test folders, the files
directly in $HOME, ~/.keras, ~/.cache/tfxfer, the repository's tfxfer/, pipelines/ and export/) and
that no payload marker appeared anywhere it could be written.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from tests.reliability.conftest import ROOT
from tfxfer.errors import (
    ArgumentError,
    ConfigError,
    DataError,
    ExportError,
    ModelError,
    UnknownNameError,
    UnsafeFileError,
)

CASES: dict = {}


def case(name, *, xfail: str | None = None):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = (fn, xfail)
        return fn

    return register


# ---------------------------------------------------------------- helpers -------------------------
def png(path, color=(255, 0, 0), size=(8, 8)):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def two_class_folder(root):
    for label, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(3):
            png(os.path.join(root, label, f"{i}.png"), color)
    return root


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def skipped(result) -> dict:
    return {row["path"]: row["reason"] for row in result.summary.skipped}


def tiny():
    from tests.factories import tiny_model, tiny_spec

    return tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.1)


def cli(*argv):
    from tfxfer.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, err.getvalue()


def fine_tune(data, **kw):
    from tfxfer.train.fine_tune import fine_tune as ft

    return ft(tiny(), data, head_epochs=1, epochs=0, verbose=0, **kw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A good float32 .tflite and .keras of the tiny model, to damage copies of."""
    from tfxfer.export import export_tflite

    d = tmp_path_factory.mktemp("good")
    model = tiny()
    export_tflite(model, str(d / "m.tflite"), variant="float32")
    model.save(str(d / "m.keras"))
    return {"tflite": (d / "m.tflite").read_bytes(), "keras": (d / "m.keras").read_bytes()}


# ---------------------------------------------------------------- image folders -------------------
@case("folder: truncated JPEG is skipped as corrupt")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    raw = open(f"{root}/cat/0.png", "rb").read()
    write(f"{root}/cat/trunc.jpg", b"\xff\xd8\xff\xe0" + raw[4:40])
    assert skipped(image_dataset_from_folder(root, image_size=8))["cat/trunc.jpg"] in ("corrupt", "truncated")


@case("folder: zero-byte image is skipped")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    write(f"{root}/dog/empty.png", b"")
    assert skipped(image_dataset_from_folder(root, image_size=8))["dog/empty.png"] == "empty_file"


@case("folder: text file named .png is skipped")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    write(f"{root}/dog/notes.png", "#!/bin/sh\nrm -rf ~\n")
    assert skipped(image_dataset_from_folder(root, image_size=8))["dog/notes.png"] == "not_an_image"


@case("folder: decompression-bomb PNG is skipped")
def _(run):
    from PIL import Image

    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    Image.new("1", (20000, 20000)).save(f"{root}/cat/bomb.png")  # 400 Mpx in ~50 kB
    assert skipped(image_dataset_from_folder(root, image_size=8))["cat/bomb.png"] == "too_large"


@case("folder: symlink to a file outside the folder is not used as an image")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    os.symlink(f"{run}/../outside/secret.txt", f"{root}/dog/link.png")
    data = image_dataset_from_folder(root, image_size=8)
    assert skipped(data)["dog/link.png"] == "symlink" and data.summary.used == 6  # not even opened
    data = image_dataset_from_folder(root, image_size=8, follow_links=True)
    assert skipped(data)["dog/link.png"] == "outside_root" and data.summary.used == 6


@case("folder: hostile class folder names stay labels, never paths")
def _(run):
    from tfxfer.data import image_dataset_from_folder
    from tfxfer.reliability import safe_join

    root = two_class_folder(f"{run}/f")
    for i in range(3):
        png(f"{root}/evil\n;rm -rf ~ ..%2f..%2f/{i}.png", (0, 255, 0))
    data = image_dataset_from_folder(root, image_size=8)
    assert "evil\n;rm -rf ~ ..%2f..%2f" in data.class_names
    for name in data.class_names:
        assert os.path.dirname(safe_join(f"{run}/out", name, suffix=".png")) == os.path.realpath(f"{run}/out")


@case("folder: a single class")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    png(f"{run}/f/cat/a.png")
    png(f"{run}/f/cat/b.png")
    with pytest.raises(DataError, match="single class.*at least 2 classes"):
        image_dataset_from_folder(f"{run}/f", image_size=8)


@case("folder: no class sub-folders (empty)")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    os.makedirs(f"{run}/empty")
    with pytest.raises(DataError, match="No class sub-folders"):
        image_dataset_from_folder(f"{run}/empty", image_size=8)


@case("folder: does not exist")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    with pytest.raises(ArgumentError, match="`directory` must be an existing folder"):
        image_dataset_from_folder(f"{run}/nope", image_size=8)


@case("folder: class_names that do not match the folders")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    with pytest.raises(DataError, match="must match the class folders"):
        image_dataset_from_folder(root, image_size=8, class_names=["cat", "horse"])


# ---------------------------------------------------------------- CSV image tables ----------------
@case("csv: missing path column")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    write(f"{run}/t.csv", "file,label\na.png,cat\n")
    with pytest.raises(DataError, match="Column 'path' not found"):
        image_dataset_from_csv(f"{run}/t.csv", image_size=8)


@case("csv: empty file")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    write(f"{run}/t.csv", "")
    with pytest.raises(DataError, match="not found"):
        image_dataset_from_csv(f"{run}/t.csv", image_size=8)


@case("csv: binary garbage")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    write(f"{run}/t.csv", b"\xff\xfe\x00garbage\x00\x01,\x02\n")
    with pytest.raises(DataError, match=r"t\.csv is not valid utf-8 text .*Save it as UTF-8"):
        image_dataset_from_csv(f"{run}/t.csv", image_size=8)


@case("csv: unknown split value")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    png(f"{run}/a.png")
    png(f"{run}/b.png", (0, 0, 255))
    write(f"{run}/t.csv", "path,label,split\na.png,cat,train\nb.png,dog,holdout\n")
    with pytest.raises(DataError, match="split 'holdout' is not one of"):
        image_dataset_from_csv(f"{run}/t.csv", image_size=8, split_column="split")


@case("csv: rows pointing outside the table's folder are skipped")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    for i in range(2):
        png(f"{run}/c{i}.png")
        png(f"{run}/d{i}.png", (0, 0, 255))
    rows = ["path,label", "c0.png,cat", "c1.png,cat", "d0.png,dog", "d1.png,dog",
            "../../../../etc/shadow-missing,cat", f"{run}/../outside/secret.txt,dog"]
    write(f"{run}/t.csv", "\n".join(rows) + "\n")
    reasons = set(skipped(image_dataset_from_csv(f"{run}/t.csv", image_size=8)).values())
    assert reasons == {"outside_root"}  # refused before the file system is asked


@case("csv: ragged rows and an unterminated quote")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    png(f"{run}/a.png")
    write(f"{run}/t.csv", 'path,label\na.png,cat,extra,"unterminated\nb.png\n')
    with pytest.raises(DataError, match=r"single class \['cat'\].*at least 2 classes"):
        image_dataset_from_csv(f"{run}/t.csv", image_size=8)


# ---------------------------------------------------------------- text tables -------------------
@case("jsonl: a broken line is skipped as bad_row")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.jsonl", '{"text": "good", "label": "a"}\n{"text": broken\n{"text": "fine", "label": "b"}\n'
                            '{"text": "ok", "label": "a"}\n{"text": "yes", "label": "b"}\n')
    data = load_texts(f"{run}/t.jsonl")
    assert "bad_row=1" in str(data.summary) and sum(len(v) for v in [data.summary.skipped]) == 1


@case("jsonl: lines that are not objects")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.jsonl", '[1, 2]\n"just a string"\n')
    with pytest.raises(DataError, match=r"None of the 2 rows of .*t\.jsonl is usable \(bad_row=2\).*no 'text' field"):
        load_texts(f"{run}/t.jsonl")


@case("jsonl: no label field")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.jsonl", '{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"is usable \(missing_label=2\).*no 'label' value"):
        load_texts(f"{run}/t.jsonl")


@case("text csv: Latin-1 bytes in a UTF-8 file")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.csv", b"text,label\ncaf\xe9,a\n")
    with pytest.raises(DataError, match="not valid utf-8.*encoding="):
        load_texts(f"{run}/t.csv")


@case("text: empty file")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.csv", "")
    with pytest.raises(DataError, match=r"t\.csv holds no rows \(an empty file"):
        load_texts(f"{run}/t.csv")


@case("text: a single class")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.csv", "text,label\nhello,a\nworld,a\n")
    with pytest.raises(DataError, match="single class"):
        load_texts(f"{run}/t.csv")


@case("text: unknown file format")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.xml", "<a/>")
    with pytest.raises(ArgumentError, match="`format` must be"):
        load_texts(f"{run}/t.xml")


# ---------------------------------------------------------------- CoNLL ---------------------------
@case("conll: a token without a tag is skipped as bad_row")
def _(run):
    from tfxfer.data import load_conll

    write(f"{run}/t.conll", "EU\tB-ORG\nrejects\n\nGerman\tB-MISC\n\n")
    assert "bad_row" in set(skipped(load_conll(f"{run}/t.conll")).values())


@case("conll: no sentences")
def _(run):
    from tfxfer.data import load_conll

    write(f"{run}/t.conll", "\n\n\n")
    with pytest.raises(DataError, match="No sentences found"):
        load_conll(f"{run}/t.conll")


@case("conll: binary content")
def _(run):
    from tfxfer.data import load_conll

    write(f"{run}/t.conll", b"\x00\xff\xfe\x80")
    with pytest.raises(DataError, match="not valid utf-8"):
        load_conll(f"{run}/t.conll")


@case("conll: I- tag without B- is loaded and reported")
def _(run):
    from tfxfer.data import load_conll

    write(f"{run}/t.conll", "EU\tI-ORG\nrejects\tO\n\n")
    assert "BIO violations" in str(load_conll(f"{run}/t.conll").summary)


# ---------------------------------------------------------------- arrays --------------------------
X = np.zeros((4, 8, 8, 3), "float32")
Y = np.array([0, 1, 0, 1])


def arrays(x, y, error, match):
    from tfxfer.data import image_dataset_from_arrays

    with pytest.raises(error, match=match):
        image_dataset_from_arrays(x, y)


case("arrays: rank-2 images")(lambda run: arrays(np.zeros((4, 8)), Y, ArgumentError, "`x` must have shape"))
case("arrays: fewer labels than images")(lambda run: arrays(X, Y[:3], ArgumentError, "one label per image"))
case("arrays: NaN pixels")(lambda run: arrays(np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), Y,
                                              ArgumentError, "finite pixel values"))
case("arrays: Inf pixels")(lambda run: arrays(np.full_like(X, np.inf), Y, ArgumentError, "finite pixel values"))
case("arrays: negative class id")(lambda run: arrays(X, np.array([0, -1, 0, 1]), ArgumentError, "class ids >= 0"))
case("arrays: fractional labels")(lambda run: arrays(X, np.array([0, 0.5, 0, 1]), ArgumentError, "integer class ids"))
case("arrays: strings instead of pixels")(lambda run: arrays(np.array([["a"] * 4] * 4), Y, ArgumentError,
                                                             "`x` must have shape"))
case("arrays: empty")(lambda run: arrays(np.zeros((0, 8, 8, 3)), np.zeros((0,)), DataError, "`x` holds no images"))
case("arrays: a single class")(lambda run: arrays(X, np.zeros(4, int), DataError, "single class"))
case("arrays: five channels")(lambda run: arrays(np.zeros((4, 8, 8, 5)), Y, ArgumentError, "1\\|3\\|4"))
case("arrays: complex dtype")(lambda run: arrays(X.astype(np.complex64), Y, (ArgumentError, DataError), "dtype|complex"))


# ---------------------------------------------------------------- backbones and weights ------------
@case("model: unknown backbone name suggests close matches")
def _(run):
    import tfxfer

    with pytest.raises(UnknownNameError, match="Unknown backbone 'mobilenetv9'. Did you mean: .*'mobilenet_v2'"):
        tfxfer.build_model("mobilenetv9", 2, weights=None)


@case("model: weights file of random bytes")
def _(run):
    import tfxfer

    write(f"{run}/w.weights.h5", os.urandom(256))
    with pytest.raises(ArgumentError, match="could not be loaded into backbone 'mobilenet_v2'"):
        tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=f"{run}/w.weights.h5")


@case("model: weights file of another model")
def _(run):
    import keras

    import tfxfer

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(f"{run}/other.weights.h5")
    with pytest.raises(ArgumentError, match="could not be loaded into backbone"):
        tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=f"{run}/other.weights.h5")


@case("model: weights file that does not exist")
def _(run):
    import tfxfer

    with pytest.raises(ArgumentError, match="path of an existing weights file"):
        tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=f"{run}/none.weights.h5")


@case("model: input smaller than the backbone allows")
def _(run):
    import tfxfer

    with pytest.raises(ArgumentError, match="must be at least 32x32"):
        tfxfer.build_model("mobilenet_v2", 2, input_size=(8, 8), weights=None)


@case("pth: pickle that calls os.system is refused unrun")
def _(run):
    from tfxfer.backbones.pth_reader import read_pth

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {run}/../pwned-pth",))

    write(f"{run}/evil.pth", pickle.dumps(Payload(), protocol=2))
    with pytest.raises(UnsafeFileError, match="refusing to load the global .*system"):
        read_pth(f"{run}/evil.pth")


@case("pth: truncated weight file")
def _(run):
    from tfxfer.backbones.pth_reader import read_pth

    write(f"{run}/t.pth", b"\x80\x02\x8a\x0a")
    with pytest.raises(DataError, match="truncated or corrupt pickle"):
        read_pth(f"{run}/t.pth")


@case("pth: zip-format torch file")
def _(run):
    from tfxfer.backbones.pth_reader import read_pth

    with zipfile.ZipFile(f"{run}/z.pth", "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(DataError, match="zip-format torch file"):
        read_pth(f"{run}/z.pth")


# ---------------------------------------------------------------- training ------------------------
def _xy(n=12):
    from tests.factories import tiny_images

    return tiny_images(n, size=16, classes=3, signal="mean_colour")


@case("fine_tune: NaN pixels in arrays")
def _(run):
    x, y = _xy()
    x[2, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or Inf values \\(first in image 2\\)"):
        fine_tune((x, y))


@case("fine_tune: NaN images in a tf.data pipeline")
def _(run):
    import tensorflow as tf

    x, y = _xy()
    ds = tf.data.Dataset.from_tensor_slices((np.full_like(x, np.nan), y)).batch(4)
    with pytest.raises(DataError, match="dataset yielded NaN or Inf image values"):
        fine_tune(ds)


@case("fine_tune: class ids beyond the head")
def _(run):
    x, y = _xy()
    with pytest.raises(DataError, match="class ids in \\[0, 2\\]"):
        fine_tune((x, y + 3))


@case("fine_tune: a single class")
def _(run):
    x, y = _xy()
    with pytest.raises(DataError, match="single class"):
        fine_tune((x, np.zeros_like(y)))


@case("fine_tune: images of the wrong size")
def _(run):
    x, y = _xy()
    with pytest.raises(DataError, match="have shape \\(8, 16, 3\\) but the model takes \\(16, 16, 3\\)"):
        fine_tune((x[:, :8], y))


@case("fine_tune: more labels than images")
def _(run):
    x, y = _xy()
    with pytest.raises(DataError, match="has 12 inputs but 13 labels"):
        fine_tune((x, np.append(y, 0)))


@case("fine_tune: empty arrays")
def _(run):
    x, y = _xy()
    with pytest.raises(DataError, match="is empty"):
        fine_tune((x[:0], y[:0]))


@case("fine_tune: strings instead of images")
def _(run):
    _, y = _xy()
    with pytest.raises(DataError, match="real numeric array"):
        fine_tune((np.array(["img"] * 12), y))


# ---------------------------------------------------------------- model files and exports --------
@case("keras: truncated .keras file")
def _(run, exported):
    from tfxfer.reliability import load_model

    write(f"{run}/t.keras", exported["keras"][: len(exported["keras"]) // 2])
    with pytest.raises(ModelError, match="not a valid .keras file"):
        load_model(f"{run}/t.keras")


@case("keras: Lambda layer from an untrusted file")
def _(run):
    import keras

    from tfxfer.reliability import load_model

    keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda v: v + 1.0)]).save(f"{run}/l.keras")
    with pytest.raises(UnsafeFileError, match="safe_mode=False"):
        load_model(f"{run}/l.keras")


@case("keras: archive member escaping with ../")
def _(run):
    from tfxfer.reliability import load_model

    with zipfile.ZipFile(f"{run}/z.keras", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("../../pwned-zip", "x")
    with pytest.raises(UnsafeFileError, match="outside the extraction folder"):
        load_model(f"{run}/z.keras")


@case("tflite: truncated file")
def _(run, exported):
    from tfxfer.export.litert import load_interpreter

    write(f"{run}/t.tflite", exported["tflite"][: len(exported["tflite"]) // 3])
    with pytest.raises(ModelError, match=r"t\.tflite is not a loadable \.tflite model \(truncated or corrupt\?\)"):
        load_interpreter(f"{run}/t.tflite")


@case("export: augmentation layer inside the model")
def _(run):
    import keras

    from tfxfer.export import export_tflite

    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.RandomFlip(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ExportError,
                       match=r"augmentation layers inside the model: random_flip.*strip_augmentation\(model\)"):
        export_tflite(model, f"{run}/a.tflite", variant="float32")
    assert not os.path.exists(f"{run}/a.tflite")


@case("export: int8 calibration images of the wrong size")
def _(run):
    from tfxfer.export import export_tflite

    with pytest.raises(DataError, match="have shape \\(9, 9, 3\\) but the model takes \\(16, 16, 3\\)"):
        export_tflite(tiny(), f"{run}/i.tflite", variant="int8", representative_data=np.zeros((4, 9, 9, 3), "float32"))


@case("export: class names that do not match the outputs")
def _(run):
    from tfxfer.export import export_tflite

    with pytest.raises(ArgumentError, match="one name per model output \\(3\\)"):
        export_tflite(tiny(), f"{run}/c.tflite", variant="float32", class_names=["a"])


# ---------------------------------------------------------------- YAML and the CLI ----------------
@case("yaml: python/object/apply tag (load_yaml)")
def _(run):
    from tfxfer.reliability import load_yaml

    with pytest.raises(ConfigError, match="Python tags are refused"):
        load_yaml(f"x: !!python/object/apply:os.system ['touch {run}/../pwned-yaml']\n")


@case("yaml: malformed (load_yaml)")
def _(run):
    from tfxfer.reliability import load_yaml

    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml("a: [1, 2\n  b: {")


@case("cli run: hostile YAML recipe")
def _(run):
    write(f"{run}/evil.yaml", f"name: x\ndata: !!python/object/apply:os.system ['touch {run}/../pwned-cli']\n")
    code, err = cli("run", f"{run}/evil.yaml", "--out", f"{run}/out")
    assert code == 2 and "could not determine a constructor" in err


@case("cli run: malformed YAML recipe")
def _(run):
    write(f"{run}/bad.yaml", "data: [1, 2\n")
    code, err = cli("run", f"{run}/bad.yaml", "--out", f"{run}/out")
    assert code == 2 and "is not valid YAML at line" in err


@case("cli run: misspelt key")
def _(run):
    write(f"{run}/typo.yaml", "name: t\ntrian: {epochs: 3}\n")
    code, err = cli("run", f"{run}/typo.yaml", "--out", f"{run}/out")
    assert code == 2 and "unknown key `trian`. Did you mean `train`?" in err


@case("cli run: recipe that is a list")
def _(run):
    write(f"{run}/list.yaml", "- a\n- b\n")
    code, err = cli("run", f"{run}/list.yaml", "--out", f"{run}/out")
    assert code == 2 and "must be a mapping of sections" in err


@case("cli run: recipe file missing")
def _(run):
    code, err = cli("run", f"{run}/missing.yaml")
    assert code == 2 and "recipe file not found" in err


@case("cli run: malformed --set")
def _(run):
    write(f"{run}/r.yaml", "name: r\n")
    code, err = cli("run", f"{run}/r.yaml", "--set", "nokey", "--out", f"{run}/out")
    assert code == 2 and "--set expects key.sub=value" in err


@case("recipe: name that climbs out of runs/")
def _(run):
    from tfxfer.recipes import load_config

    write(f"{run}/trav.yaml", "name: ../../../escaped\ndata: {source: animal_mnist}\n"
                              "model: {backbone: mobilenet_v2}\n")
    with pytest.raises(ConfigError, match="name"):
        load_config(f"{run}/trav.yaml")


@case("cli predict: truncated .tflite")
def _(run, exported):
    png(f"{run}/imgs/a.png", size=(16, 16))
    write(f"{run}/t.tflite", exported["tflite"][:500])
    code, err = cli("predict", f"{run}/t.tflite", f"{run}/imgs")
    assert code == 1 and "t.tflite is not a loadable .tflite model (truncated or corrupt?)" in err


@case("cli predict: truncated .keras")
def _(run, exported):
    png(f"{run}/imgs/a.png", size=(16, 16))
    write(f"{run}/t.keras", exported["keras"][:1000])
    code, err = cli("predict", f"{run}/t.keras", f"{run}/imgs")
    assert code == 1 and "not a valid .keras file" in err


@case("cli predict: .keras with a Lambda layer")
def _(run):
    import keras

    png(f"{run}/imgs/a.png", size=(16, 16))
    keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Lambda(lambda v: v * 1.0),
                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
                     ).save(f"{run}/l.keras")
    code, err = cli("predict", f"{run}/l.keras", f"{run}/imgs")
    assert code == 1 and "safe_mode=False" in err


@case("cli predict: broken image among good ones")
def _(run, exported):
    write(f"{run}/m.tflite", exported["tflite"])
    png(f"{run}/imgs/a.png", size=(16, 16))
    write(f"{run}/imgs/b.png", b"\x89PNG\r\n\x1a\nbroken")
    code, err = cli("predict", f"{run}/m.tflite", f"{run}/imgs")  # found in a folder: a counted skip
    assert code == 0 and "skipped 1 file(s)" in err and "b.png (" in err
    code, err = cli("predict", f"{run}/m.tflite", f"{run}/imgs/a.png", f"{run}/imgs/b.png")  # named: an error
    assert code == 1 and "b.png: not a readable image" in err


@case("cli predict: --top 0")
def _(run, exported):
    write(f"{run}/m.tflite", exported["tflite"])
    png(f"{run}/imgs/a.png", size=(16, 16))
    code, err = cli("predict", f"{run}/m.tflite", f"{run}/imgs", "--top", "0")
    assert code == 2 and "`--top` must be an int >= 1. Received: --top=0" in err


@case("cli evaluate: unknown data set name")
def _(run, exported):
    write(f"{run}/m.tflite", exported["tflite"])
    code, err = cli("evaluate", f"{run}/m.tflite", "imagenet_full")
    assert code == 2 and "must be a packaged data set name, a folder or a CSV table" in err


@case("cli backbones: unknown family")
def _(run):
    code, err = cli("backbones", "--family", "transformerz")
    assert code == 2 and "Unknown backbone family 'transformerz'" in err


# ---------------------------------------------------------------- round two (issue 15) ------------
def _quiet(fn, *args, **kwargs):
    import warnings

    from tfxfer.data import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fn(*args, **kwargs)


@case("folder: a FIFO among the images is skipped, not read (no hang)")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    os.mkfifo(f"{root}/cat/pipe.png")
    data = image_dataset_from_folder(root, image_size=8)
    assert skipped(data)["cat/pipe.png"] == "not_a_regular_file" and data.summary.used == 6


@case("folder: a link to /dev/zero is skipped, followed or not (no hang)")
def _(run):
    from tfxfer.data import image_dataset_from_folder, scan_images

    root = two_class_folder(f"{run}/f")
    os.symlink("/dev/zero", f"{root}/dog/zero.png")
    assert skipped(image_dataset_from_folder(root, image_size=8))["dog/zero.png"] == "symlink"
    assert skipped(image_dataset_from_folder(root, image_size=8, follow_links=True))["dog/zero.png"] == "outside_root"
    assert scan_images([f"{root}/dog/zero.png"]).skipped[0]["reason"] == "not_a_regular_file"


@case("folder: a class folder that is a link elsewhere is not read")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    other = two_class_folder(f"{run}/elsewhere")
    os.symlink(f"{other}/cat", f"{root}/bird")
    data = image_dataset_from_folder(root, image_size=8)
    assert data.class_names == ["cat", "dog"] and skipped(data)["bird"] == "symlink"


@case("folder: a file name with a non-UTF-8 byte is a counted skip")
def _(run):
    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    with open(os.path.join(os.fsencode(root), b"cat", b"r\xe9sum\xe9.png"), "wb") as f:
        f.write(open(f"{root}/cat/0.png", "rb").read())
    data = image_dataset_from_folder(root, image_size=8)
    assert skipped(data)["cat/r\\xe9sum\\xe9.png"] == "undecodable_name" and data.summary.used == 6


@case("folder: a header declaring 3.6 Gpx is refused before decoding")
def _(run):
    import struct
    import zlib

    from tfxfer.data import image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    data = bytearray(open(f"{root}/cat/0.png", "rb").read())
    data[16:24] = struct.pack(">II", 60000, 60000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    write(f"{root}/cat/huge.png", bytes(data))
    assert skipped(image_dataset_from_folder(root, image_size=8))["cat/huge.png"] == "too_large"


@case("folder: an EXIF-rotated photo is turned upright")
def _(run):
    from PIL import Image

    from tfxfer.data import scan_images

    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    os.makedirs(f"{run}/p", exist_ok=True)
    Image.fromarray(pixels).save(f"{run}/p/r.jpg", exif=exif, quality=100)
    result = scan_images([f"{run}/p/r.jpg"])
    assert Image.open(io.BytesIO(result.ok[0].blob)).size == (4, 8)


@case("folder: the same image under two labels is a label conflict naming both")
def _(run):
    from tfxfer.data import DataWarning, image_dataset_from_folder

    root = two_class_folder(f"{run}/f")
    write(f"{root}/dog/copy.png", open(f"{root}/cat/0.png", "rb").read())
    with pytest.warns(DataWarning, match="label conflict"):
        data = image_dataset_from_folder(root, image_size=8)
    assert data.summary.label_conflicts[0]["labels"] == {"cat": ["cat/0.png", "cat/1.png", "cat/2.png"],
                                                         "dog": ["dog/copy.png"]}  # (the cats are copies too)


@case("folder: labels that differ only by case or a zero-width space")
def _(run):
    from tfxfer.data import DataWarning, image_dataset_from_folder

    for k, label in enumerate(("cat", "Cat", "dog\u200b", "dog")):
        for i in range(2):
            png(f"{run}/f/{label}/{i}.png", (60 * k + i, 0, 0))
    with pytest.warns(DataWarning, match="differ only by case"):
        data = image_dataset_from_folder(f"{run}/f", image_size=8)
    assert data.summary.lookalike_labels == [["Cat", "cat"], ["dog", "dog\u200b"]]


@case("csv: absolute paths refused unless allow_outside_root")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    root = two_class_folder(f"{run}/f")
    png(f"{run}/elsewhere.png", (9, 9, 9))
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)]
    write(f"{root}/t.csv", "\n".join(rows + [f"{run}/elsewhere.png,cat"]))
    assert skipped(image_dataset_from_csv(f"{root}/t.csv", image_size=8))[f"{run}/elsewhere.png"] == "outside_root"
    data = image_dataset_from_csv(f"{root}/t.csv", image_size=8, allow_outside_root=True)
    assert data.summary.used == 7


@case("csv: one file listed under two labels")
def _(run):
    from tfxfer.data import image_dataset_from_csv

    root = two_class_folder(f"{run}/f")
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)] + ["cat/0.png,dog"]
    write(f"{root}/t.csv", "\n".join(rows))
    data = image_dataset_from_csv(f"{root}/t.csv", image_size=8)
    rows = [r for r in data.summary.skipped if r["reason"] == "label_conflict"]
    assert len(rows) == 2 and "line 8" in rows[0]["detail"] and data.summary.used == 5


@case("tsv: a stray quote does not swallow the following rows")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.tsv", 'text\tlabel\n"so good\tpos\nbad\tneg\nfine\tpos\nawful\tneg\n')
    data = load_texts(f"{run}/t.tsv")
    assert data.summary.scanned == 4 and len(data.train.x) == 4


@case("csv text: a 300 KiB text field")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.csv", "text,label\n" + "z" * (300 << 10) + ",pos\na,neg\nb,pos\nc,neg\n")
    assert len(load_texts(f"{run}/t.csv").train.x) == 4


@case("jsonl: single and multi-label rows mixed")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n')
    with pytest.raises(DataError, match=r"t\.jsonl:2: a list of labels"):
        load_texts(f"{run}/t.jsonl")


@case("jsonl: every label list empty (found by the fuzzer)")
def _(run):
    from tfxfer.data import load_texts

    write(f"{run}/t.jsonl", '{"text": "a", "label": []}\n{"text": "b", "label": []}\n')
    with pytest.raises(DataError, match="has a label"):
        load_texts(f"{run}/t.jsonl")


@case("conll: a token holding U+2028 keeps its tag")
def _(run):
    from tfxfer.data import load_conll

    write(f"{run}/t.conll", "a\u2028b\tB-PER\nc\tO\n\nd\tO\ne\tB-PER\n\nf\tO\ng\tB-PER\n")
    data = load_conll(f"{run}/t.conll")
    assert not data.summary.skipped and sum(len(x) for x in data.train.x) == 6


@case("text: a table that is a FIFO")
def _(run):
    from tfxfer.data import load_texts

    os.mkfifo(f"{run}/t.csv")
    with pytest.raises(ArgumentError, match="must be an existing file"):
        load_texts(f"{run}/t.csv")


@case("fingerprint: a data folder with a FIFO and a /dev/zero link")
def _(run):
    from tfxfer.recipes.fingerprint import path_fingerprint

    root = two_class_folder(f"{run}/f")
    before = path_fingerprint(root)
    os.mkfifo(f"{root}/cat/pipe.png")
    os.symlink("/dev/zero", f"{root}/dog/zero.png")
    assert path_fingerprint(root) == before


@case("cli run: --set train.base_lr=-1")
def _(run):
    write(f"{run}/r.yaml", "name: r\ndata: {source: animal_mnist}\n")
    code, err = cli("run", f"{run}/r.yaml", "--set", "train.base_lr=-1", "--out", f"{run}/out")
    assert code == 2 and "`train.base_lr` must be a finite number > 0. Received: -1.0" in err
    assert not os.path.exists(f"{run}/out")  # refused before any stage ran


@case("cli run: NaN gate threshold and zero reliability bins")
def _(run):
    write(f"{run}/r.yaml", "name: r\ndata: {source: animal_mnist}\nexport: {thresholds: {int8: "
                           "{max_accuracy_drop: .nan}}}\n")
    code, err = cli("run", f"{run}/r.yaml", "--out", f"{run}/out")
    assert code == 2 and "max_accuracy_drop` must be a finite number >= 0. Received: nan" in err
    code, err = cli("run", f"{run}/r.yaml", "--set", "export.thresholds={}", "--set", "report.reliability_bins=0",
                    "--out", f"{run}/out")
    assert code == 2 and "`report.reliability_bins` must be an integer >= 1" in err


@case("cli run: a 350-byte YAML alias bomb")
def _(run):
    import time

    bomb = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                   for p, a in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi"))
    write(f"{run}/bomb.yaml", bomb)
    t0 = time.perf_counter()
    code, err = cli("run", f"{run}/bomb.yaml", "--out", f"{run}/out")
    assert code == 2 and "alias bomb" in err and len(err) < 600 and time.perf_counter() - t0 < 5


@case("cli run: a recursive YAML alias")
def _(run):
    write(f"{run}/rec.yaml", "data: &d {source: animal_mnist, x: *d}\n")
    code, err = cli("run", f"{run}/rec.yaml", "--out", f"{run}/out")
    assert code == 2 and "recursive node" in err  # PyYAML refuses a recursive mapping itself
    write(f"{run}/rec.yaml", "data: {source: animal_mnist}\nexport: {variants: &v [int8, *v]}\n")
    code, err = cli("run", f"{run}/rec.yaml", "--out", f"{run}/out")
    assert code == 2 and "nested more than 16 levels" in err  # a recursive list is built: the depth limit stops it


@case("cli run: a recipe saved as UTF-16")
def _(run):
    write(f"{run}/u16.yaml", "name: u\ndata: {source: animal_mnist}\ntrian: {epochs: 1}\n".encode("utf-16"))
    code, err = cli("run", f"{run}/u16.yaml", "--out", f"{run}/out")
    assert code == 2 and "unknown key `trian`" in err  # decoded: the recipe's own mistake is what is reported


@case("cli run: a recipe in Latin-1 without a byte-order mark")
def _(run):
    write(f"{run}/l1.yaml", "name: u\ndata: {source: caf\xe9}\n".encode("latin-1"))
    code, err = cli("run", f"{run}/l1.yaml", "--out", f"{run}/out")
    assert code == 2 and "is not UTF-8 text" in err and "save it as UTF-8" in err


@case("cli run: data.source is a FIFO")
def _(run):
    os.mkfifo(f"{run}/data.csv")
    write(f"{run}/r.yaml", f"name: r\ndata: {{source: {run}/data.csv}}\n")
    code, err = cli("run", f"{run}/r.yaml", "--out", f"{run}/out")
    assert code == 2 and "neither a regular file nor a folder" in err


@case("cli run: a run folder another run holds")
def _(run):
    from tfxfer.utils.lock import FolderLock

    write(f"{run}/r.yaml", "name: r\ndata: {source: animal_mnist}\nmodel: {weights: null}\n")
    with FolderLock(f"{run}/out", command=["tfxfer", "run", "first"]):
        code, err = cli("run", f"{run}/r.yaml", "--out", f"{run}/out")
    assert code == 1 and "is locked by another tfxfer process" in err and "first" in err


@case("json: damaged labels / manifest files read through read_json")
def _(run):
    from tfxfer.utils.jsonfile import read_json

    for content, message in (("{not json", "not valid JSON"), ("[1]", "a JSON list, not a dict"),
                             ('{"class_names": "cat"}', "`class_names` must be a list, not str"),
                             ("[" * 100000, "nested too deeply|not valid JSON"), (b"\xff\xfe{}", "not UTF-8")):
        write(f"{run}/labels.json", content)
        with pytest.raises(DataError, match=message):
            read_json(f"{run}/labels.json", what="labels file", fields={"class_names": list})
    os.mkfifo(f"{run}/fifo.json")
    with pytest.raises(DataError, match="not a regular file"):
        read_json(f"{run}/fifo.json")


# ---------------------------------------------------------------- the guard and the test ---------
def _snapshot(paths, *, skip):
    state = {}
    for top in paths:
        if not os.path.exists(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip and d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                state[path] = (st.st_size, st.st_mtime_ns)
    return state


def _shallow(directory):
    try:
        return {e.name: (e.stat(follow_symlinks=False).st_size, e.stat(follow_symlinks=False).st_mtime_ns)
                for e in os.scandir(directory) if e.is_file(follow_symlinks=False)}
    except OSError:
        return {}


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """``tmp_path/run`` as the working directory, bait files beside it, and a guard around the case."""
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch")
    (outside / "config.yaml").write_text("keep: me\n")
    monkeypatch.chdir(run)
    base = str(tmp_path.parent)
    before = _snapshot([base], skip={str(run)})
    home, repo = os.path.expanduser("~"), ROOT
    home_before, repo_before = _shallow(home), set(os.listdir(repo))
    # the package, the recipes and the device runner in the repository, and Keras's and tfxfer's own
    # folders in $HOME: nothing a case does may change a file there (bytecode caches aside)
    watched = [os.path.join(repo, d) for d in ("tfxfer", "pipelines", "export")] + [
        os.path.join(home, ".keras"), os.path.join(home, ".cache", "tfxfer")]
    watched_before = _snapshot(watched, skip=set())
    yield str(run)
    watched_after = _snapshot(watched, skip=set())
    touched = sorted(p for p in set(watched_before) | set(watched_after)
                     if watched_before.get(p) != watched_after.get(p))
    assert not touched, f"files in the repository or in ~/.keras / ~/.cache/tfxfer changed: {touched[:10]}"
    after = _snapshot([base], skip={str(run)})
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"files outside the run directory changed: {changed[:10]}"
    assert _shallow(home) == home_before, "a file directly in $HOME changed"
    # (Only payload markers here: under pytest-xdist other tests may legitimately add files to the repo.)
    new_in_repo = {n for n in set(os.listdir(repo)) - repo_before if "pwned" in n}
    assert not new_in_repo, f"new entries in the repository root: {new_in_repo}"
    for where in (base, home, repo, "/tmp", os.path.dirname(base)):
        assert not [n for n in os.listdir(where) if n.startswith("pwned")], f"a payload ran and wrote to {where}"


PARAMS = [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=xfail)] if xfail else [])
          for name, (_, xfail) in CASES.items()]


def test_the_suite_has_at_least_40_distinct_bad_inputs():
    assert len(CASES) >= 40
    assert len({fn for fn, _ in CASES.values()}) == len(CASES)


@pytest.mark.parametrize("name", PARAMS)
def test_bad_input(name, exported, run_dir):  # `exported` first: it is written before the guard starts
    fn, _ = CASES[name]
    if "exported" in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
        fn(run_dir, exported)
    else:
        fn(run_dir)
