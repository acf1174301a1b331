"""One decode and resize everywhere: training pipeline, ``predict``, the serving signature and the
device runner give the same pixels and the same probabilities on a mixed-format folder.

Formats: JPEG (RGB, grayscale, CMYK), PNG (8-bit RGB, 16-bit grayscale, palette, RGBA), GIF (first of
two frames), BMP; sizes above and below the model's, for RGB and grayscale models; and photos whose
EXIF orientation is not upright (JPEG 6 and 8, PNG 3), which every path turns the camera's way.
"""

import importlib.util
import os

import numpy as np
import pytest

from tfxfer.data.decode import decode_for_model

RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "export", "litert_runner.py")
SIZE = (32, 32)


def _runner():
    spec = importlib.util.spec_from_file_location("litert_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("mixed")

    def picture(h, w):  # smooth colour gradients plus noise: resizing matters, ties are rare
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w) + 60], -1)
        return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)

    files = {}
    rgb = Image.fromarray(picture(75, 61))
    rgb.save(folder / "photo.jpg", quality=92)
    rgb.convert("L").save(folder / "gray.jpg", quality=92)
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    Image.fromarray(picture(20, 27)).save(folder / "small.png")
    deep = (picture(50, 40)[..., 0].astype(np.uint16) * 257 + rng.integers(0, 256, (50, 40))).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    rgb.quantize(64).save(folder / "palette.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(picture(75, 61)[..., 1]))
    rgba.save(folder / "alpha.png")
    frames = [Image.fromarray(picture(48, 48)).quantize(128), Image.fromarray(picture(48, 48)).quantize(128)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(picture(33, 90)).save(folder / "wide.bmp")
    for name in sorted(os.listdir(folder)):
        files[name] = str(folder / name)
    return files


@pytest.fixture(scope="module")
def rotated_folder(tmp_path_factory):
    """Not square, a gradient in both directions: a wrong or missing turn changes every pixel."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("rotated")
    yy, xx = np.mgrid[0:40, 0:70]
    picture = Image.fromarray(np.stack([xx * 255 / 70, yy * 255 / 40, 255 - xx * 255 / 70], -1).astype(np.uint8))
    files = {}
    for name, orientation in (("exif6.jpg", 6), ("exif8.jpg", 8), ("exif3.png", 3)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        picture.save(folder / name, exif=exif, **({"quality": 92} if name.endswith(".jpg") else {}))
        files[name] = str(folder / name)
    return files


def _training_pixels(paths, size, channels):
    """What the training pipeline feeds the model: the loaders' scan (EXIF turn, conversions), then decode."""
    import tensorflow as tf

    from tfxfer.data.scan import scan_images
    from tfxfer.data.tfdata import decode_file

    scanned = {r.path: r.blob for r in scan_images(paths).ok}
    assert sorted(scanned) == sorted(paths), "the loaders skipped a test image"
    return np.stack([decode_file(tf.constant(p), tf.constant(scanned[p]), image_size=size, channels=channels).numpy()
                     for p in paths])


@pytest.mark.parametrize("channels", [1, 3])
def test_every_path_decodes_the_same_pixels(mixed_folder, channels):
    import tensorflow as tf

    from tfxfer.data.tfdata import decode_file
    from tfxfer.recipes.image_inputs import read_images

    runner = _runner()
    names = sorted(mixed_folder)
    paths = [mixed_folder[n] for n in names]
    predict = read_images(paths, image_size=SIZE, channels=channels)
    worst = {}
    for name, path, from_predict in zip(names, paths, predict):
        training = decode_file(tf.constant(path), tf.constant(b""), image_size=SIZE, channels=channels).numpy()
        with open(path, "rb") as f:
            serving = decode_for_model(tf.constant(f.read()), image_size=SIZE, channels=channels).numpy()
        device = runner.load_image(path, *SIZE, channels)[0]
        assert training.shape == serving.shape == device.shape == (*SIZE, channels), name
        np.testing.assert_array_equal(training, serving, err_msg=name)
        np.testing.assert_array_equal(training, from_predict, err_msg=name)
        worst[name] = float(np.abs(device - training.astype(np.float32)).max())
    # The resize is reproduced exactly, and so is the JPEG decode: TensorFlow decodes with libjpeg's
    # accurate integer DCT (tfxfer.data.decode.JPEG_DCT_METHOD), as Pillow does. With TensorFlow's
    # default fast DCT these quality-92 JPEGs were up to 4 grey levels apart after the resize.
    off = {n: v for n, v in worst.items() if v > 0}
    assert not off, off


def _sensitive_model(channels):
    """Raw pixels -> Preprocess -> conv -> pool -> softmax, random weights that make outputs vary by image."""
    import keras

    from tfxfer.preprocess import Preprocess

    keras.utils.set_random_seed(3)
    inputs = keras.Input((*SIZE, channels), name="image")
    x = Preprocess("tf")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=20.0))(x)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


@pytest.mark.parametrize("channels", [1, 3])
def test_training_predict_serving_and_device_agree_on_probabilities(mixed_folder, rotated_folder, channels,
                                                                    tmp_path):
    """The four paths on the same files: same top-1 on every image, max probability difference small."""
    import tensorflow as tf

    from tfxfer.export import export_saved_model, export_tflite
    from tfxfer.export.served_outputs import model_output
    from tfxfer.recipes.image_inputs import read_images

    model = _sensitive_model(channels)
    files = {**mixed_folder, **rotated_folder}
    names = sorted(files)
    paths = [files[n] for n in names]
    training = _training_pixels(paths, SIZE, channels).astype("float32")
    p_train = model.predict(training, verbose=0)
    assert p_train.std(axis=0).max() > 0.05, p_train  # the model reacts to its input: parity means something
    p_predict = model.predict(read_images(paths, image_size=SIZE, channels=channels), verbose=0)
    saved = export_saved_model(model, tmp_path / "serving", name="m", class_names=["a", "b", "c"])
    serve = tf.saved_model.load(saved.path).signatures["serving_default"]
    blobs = []
    for p in paths:
        with open(p, "rb") as f:
            blobs.append(f.read())
    p_serving = serve(image_bytes=tf.constant(blobs))[model_output(serve.structured_outputs)].numpy()
    tflite = export_tflite(model, tmp_path / "m.tflite", variant="float32", class_names=["a", "b", "c"],
                           run_preflight=False)
    classifier = _runner().Classifier(tflite.path)
    p_device = np.stack([classifier.classify(p)[0] for p in paths])
    # Training and predict decode an upright JPEG with TensorFlow but an EXIF-turned one with Pillow
    # (the loaders convert it to an upright PNG); the serving graph always decodes with TensorFlow (and
    # turns in the graph), the device runner always with Pillow. Both decoders use libjpeg's accurate
    # DCT, so every path gives the same pixels and (float32 file) the same probabilities.
    for label, other in (("predict", p_predict), ("serving", p_serving), ("device", p_device)):
        assert other.argmax(1).tolist() == p_train.argmax(1).tolist(), label
        exact = float(np.abs(other - p_train).max())
        print(f"channels={channels} {label}: max probability difference vs training {exact:.2e}")
        assert exact < 1e-5, (label, exact)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_serving_graph_turns_exif_photos_like_the_loaders(rotated_folder, channels):
    """Pixel level, with the serving signature's own decode (`tfxfer.export.exif`): the EXIF-turned
    PNG and JPEGs exactly (a missing or wrong turn would move the gradients by up to 255)."""
    import tensorflow as tf

    from tfxfer.data.decode import resize_pixels, to_channels
    from tfxfer.export.exif import decode_upright_rgb

    names = sorted(rotated_folder)
    paths = [rotated_folder[n] for n in names]
    size = (20, 12)  # the turned pictures are 40 wide and 70 high
    training = _training_pixels(paths, size, channels)
    for name, path, want in zip(names, paths, training):
        with open(path, "rb") as f:
            data = tf.constant(f.read())
        serving = resize_pixels(to_channels(decode_upright_rgb(data), channels), size).numpy()
        worst = int(np.abs(serving.astype(int) - want.astype(int)).max())
        assert worst == 0, (name, worst)


def test_serving_refuses_tiff_and_webp_clearly(tmp_path):
    import tensorflow as tf
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.tiff")
    with open(tmp_path / "x.tiff", "rb") as f:
        data = f.read()
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        decode_for_model(tf.constant(data), image_size=SIZE, channels=3)


def test_an_exif_rotated_photo_is_upright_in_training_predict_and_on_the_device(tmp_path):
    import tensorflow as tf
    from PIL import Image

    from tfxfer.data.scan import scan_images
    from tfxfer.data.tfdata import decode_file
    from tfxfer.recipes.image_inputs import read_images

    pixels = np.zeros((24, 48, 3), np.uint8)
    pixels[:, :24] = 255  # left half white as stored; EXIF 6 shows it on top, 24 wide and 48 high
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "rotated.jpg")
    Image.fromarray(pixels).save(path, exif=exif, quality=100)

    (loaded,) = scan_images([path]).ok  # what the training loaders feed the decoder
    size = (16, 8)
    training = decode_file(tf.constant(path), tf.constant(loaded.blob), image_size=size, channels=3).numpy()
    from_predict = read_images([path], image_size=size, channels=3)[0]
    device = _runner().load_image(path, *size, 3)[0]
    np.testing.assert_array_equal(training, from_predict)
    np.testing.assert_array_equal(training.astype(np.float32), device)
    assert training[0].mean() > 200 and training[-1].mean() < 50  # white on top: upright


def test_tiffs_the_loaders_convert_decode_the_same_on_the_device(tmp_path):
    """32-bit int, float and 16-bit TIFFs (and a rotated 16-bit PNG) are converted by the loaders'
    scan (``to_rgb_png``: scaled, not clipped); the runner reproduces that, not the PNG high-byte rule."""
    from PIL import Image

    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 1, 20 * 30).reshape(20, 30)
    arrays = {"int32.tif": (ramp * 255).astype(np.int32),
              "int32_wide.tif": (ramp * 65535).astype(np.int32),
              "float.tif": (ramp * 0.9).astype(np.float32),
              "uint16.tif": (ramp * 65535).astype(np.uint16) | rng.integers(0, 256, (20, 30)).astype(np.uint16)}
    paths = []
    for name, array in arrays.items():
        Image.fromarray(array).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(arrays["uint16.tif"]).save(tmp_path / "deep16_exif3.png", exif=exif)
    paths.append(str(tmp_path / "deep16_exif3.png"))
    runner = _runner()
    for channels in (1, 3):
        training = _training_pixels(paths, SIZE, channels)
        for path, expected in zip(paths, training):
            device = runner.load_image(path, *SIZE, channels)[0]
            np.testing.assert_array_equal(expected.astype(np.float32), device, err_msg=os.path.basename(path))
            assert device.max() > 100, os.path.basename(path)  # not black
