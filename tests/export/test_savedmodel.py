"""SavedModel for TF Serving: signatures round-trip with bytes and tensors, warm-up, bad input, atomicity."""

import io
import os

import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.export import export_saved_model, read_warmup
from tfxfer.export.serving import models_config

from .conftest import CLASS_NAMES


def _encode(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served(trained_model, tmp_path_factory):
    import tensorflow as tf

    base = tmp_path_factory.mktemp("serving")
    result = export_saved_model(trained_model, base, name="colors", class_names=CLASS_NAMES)
    return result, tf.saved_model.load(result.path), base


def test_layout_and_models_config(served):
    result, loaded, base = served
    assert result.version == 1 and result.path == os.path.join(str(base), "colors", "1")
    assert result.verified
    assert os.path.isfile(os.path.join(result.path, "saved_model.pb"))
    assert os.path.isfile(os.path.join(result.path, "assets.extra", "tf_serving_warmup_requests"))
    with open(result.models_config_path) as f:
        text = f.read()
    assert result.models_config_path == os.path.join(str(base), "models.config")
    assert 'name: "colors"' in text and f'base_path: "{os.path.abspath(base)}/colors"' in text
    assert sorted(loaded.signatures) == ["serving_default", "serving_image"]


def test_bytes_and_tensor_signatures_match_keras(served, trained_model, color_data):
    import tensorflow as tf

    _, loaded, _ = served
    _, (xt, yt) = color_data
    images = xt[:6].astype(np.uint8)
    expected = trained_model.predict(images.astype("float32"), verbose=0)
    tensor_out = loaded.signatures["serving_image"](image=tf.constant(images))
    np.testing.assert_allclose(tensor_out["probabilities"].numpy(), expected, atol=1e-5)
    png = [_encode(im, "PNG") for im in images]
    bytes_out = loaded.signatures["serving_default"](image_bytes=tf.constant(png))
    np.testing.assert_allclose(bytes_out["probabilities"].numpy(), expected, atol=1e-5)
    top = [c.decode() for c in bytes_out["top_class"].numpy()]
    assert top == [CLASS_NAMES[i] for i in expected.argmax(1)]
    classes = bytes_out["classes"].numpy()
    assert classes.shape == (6, 4) and [c.decode() for c in classes[0]] == CLASS_NAMES
    np.testing.assert_allclose(bytes_out["top_probability"].numpy(), expected.max(1), atol=1e-5)
    jpeg = loaded.signatures["serving_default"](image_bytes=tf.constant([_encode(im, "JPEG") for im in images]))
    assert (jpeg["probabilities"].numpy().argmax(1) == expected.argmax(1)).mean() >= 5 / 6


def test_softmax_model_keeps_its_four_outputs(served):
    result, loaded, _ = served
    four = ["classes", "probabilities", "top_class", "top_probability"]
    assert sorted(loaded.signatures["serving_default"].structured_outputs) == four
    assert sorted(loaded.signatures["serving_image"].structured_outputs) == four
    assert sorted(result.outputs) == four


def test_tensor_signature_resizes_other_sizes(served, trained_model):
    import tensorflow as tf

    _, loaded, _ = served
    big = np.zeros((1, 64, 48, 3), np.uint8)
    big[..., 2] = 220  # blue
    out = loaded.signatures["serving_image"](image=tf.constant(big))
    assert out["top_class"].numpy()[0].decode() == "blue"


def test_repeated_calls_are_identical(served, color_data):
    """The served graph runs with training=False: dropout inactive, no randomness."""
    import tensorflow as tf

    _, loaded, _ = served
    _, (xt, _) = color_data
    images = tf.constant(xt[:8].astype(np.uint8))
    first = loaded.signatures["serving_image"](image=images)["probabilities"].numpy()
    second = loaded.signatures["serving_image"](image=images)["probabilities"].numpy()
    np.testing.assert_array_equal(first, second)


def test_warmup_file_parses_as_prediction_log(served):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    result, loaded, _ = served
    logs = read_warmup(result.warmup_path)
    assert len(logs) == 2 and all(isinstance(log, prediction_log_pb2.PredictionLog) for log in logs)
    signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert signatures == ["serving_default", "serving_image"]
    assert all(log.predict_log.request.model_spec.name == "colors" for log in logs)
    for log in logs:  # replay each warm-up request through its signature
        request = log.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["probabilities"].shape == (1, 4)


def test_bad_input_raises_errors_not_crashes(served):
    import tensorflow as tf

    _, loaded, _ = served
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"this is not an image"]))
    rejected = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(rejected, match="rank|shape|4-D|dimension"):  # wrong rank
        loaded.signatures["serving_image"](image=tf.zeros((32, 32, 3), tf.uint8))
    with pytest.raises(rejected):  # wrong dtype
        loaded.signatures["serving_image"](image=tf.zeros((1, 32, 32, 3), tf.float32))
    with pytest.raises(rejected, match="channel|shape"):  # wrong channels
        loaded.signatures["serving_image"](image=tf.zeros((1, 32, 32, 4), tf.uint8))
    with pytest.raises(rejected):  # numbers where bytes are expected
        loaded.signatures["serving_default"](image_bytes=tf.constant([1.0]))
    with pytest.raises(rejected):  # a 2-D batch of bytes
        loaded.signatures["serving_default"](image_bytes=tf.constant([[b"x"]]))
    # The process and the model survive: a good request still works.
    good = loaded.signatures["serving_image"](image=tf.zeros((1, 32, 32, 3), tf.uint8))
    assert good["probabilities"].shape == (1, 4)


def test_versions_increment_and_existing_versions_are_kept(trained_model, tmp_path):
    first = export_saved_model(trained_model, tmp_path, name="m", verify=False)
    second = export_saved_model(trained_model, tmp_path, name="m", verify=False, warmup=False)
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(ArgumentError, match="already exists"):
        export_saved_model(trained_model, tmp_path, name="m", version=2)
    replaced = export_saved_model(trained_model, tmp_path, name="m", version=2, overwrite=True, verify=False)
    assert replaced.version == 2 and second.warmup_path is None
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]


def test_argument_errors(trained_model, tmp_path):
    cases = [({"name": "../evil"}, "name"), ({"name": ""}, "name"), ({"name": "m", "version": 0}, "version"),
             ({"name": "m", "image_size": (64, 64)}, "image_size"),
             ({"name": "m", "class_names": ["a"]}, "class_names"), ({"name": "m", "warmup": False}, "needs warmup")]
    for kwargs, match in cases:
        with pytest.raises(ArgumentError, match=match):
            export_saved_model(trained_model, tmp_path, **kwargs)
    assert not (tmp_path / "m").exists()


def test_failure_midway_leaves_no_version_folder(trained_model, tmp_path, monkeypatch):
    import tfxfer.export.serving as serving

    def broken(version_dir, logs):
        os.makedirs(os.path.join(version_dir, "assets.extra"))
        with open(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"), "wb") as f:
            f.write(b"half")
        raise OSError("interrupted while writing warm-up requests")

    monkeypatch.setattr(serving, "write_warmup", broken)
    with pytest.raises(OSError, match="interrupted"):
        export_saved_model(trained_model, tmp_path, name="m")
    assert not (tmp_path / "m" / "1").exists()
    leftovers = [p for p in (tmp_path / "m").iterdir()] if (tmp_path / "m").exists() else []
    assert leftovers == []


def test_models_config_text():
    text = models_config({"b": "/models/b", "a": "/models/a"})
    assert text.index('name: "a"') < text.index('name: "b"')
    assert text.startswith("model_config_list {") and 'model_platform: "tensorflow"' in text
