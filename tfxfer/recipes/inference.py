"""Open a trained model (``.keras``, ``.tflite`` or a run directory) and run it on images or data sets:
what ``tfxfer predict``, ``tfxfer evaluate`` and ``tfxfer export`` call (`open_model`).

Example:
    >>> import numpy as np
    >>> top_k(np.array([[0.1, 0.7, 0.2]]), ["cat", "dog", "fox"], k=2)
    [[('dog', 0.7), ('fox', 0.2)]]
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfxfer.errors import ArgumentError, DataError, ModelError, bounded_repr

@dataclasses.dataclass
class LoadedModel:
    """A model ready to predict: ``kind`` is "keras" or "tflite"."""

    path: str
    kind: str
    model: object
    image_size: tuple | None
    channels: int | None
    class_names: list
    task: str = "image_classification"
    logits: bool = False  # the model outputs logits (a linear classifier): predict applies the softmax

    def predict(self, images, *, batch_size: int = 32, views=None) -> np.ndarray:
        """Class probabilities for raw-pixel ``images``; ``views`` (e.g. ["identity", "hflip"]) averages
        them over flipped copies (test-time augmentation: one pass per view, .tflite files too). A model
        that outputs logits (``logits``) gets the softmax of them, so "probability" means one."""
        if self.logits and views is None:
            raw = dataclasses.replace(self, logits=False).predict(images, batch_size=batch_size)
            shifted = np.exp(raw - raw.max(axis=-1, keepdims=True))
            return shifted / shifted.sum(axis=-1, keepdims=True)
        images = np.asarray(images, dtype=np.float32)
        if views is not None:
            from tfxfer.train.tta import check_views, flip_images

            views = check_views(views, name="tta")
            return np.mean([self.predict(flip_images(images, v), batch_size=batch_size) for v in views], axis=0)
        if self.kind == "tflite":
            from tfxfer.export.litert import predict_tflite

            return predict_tflite(self.path, images, batch_size=batch_size)
        return np.asarray(self.model.predict(images, batch_size=batch_size, verbose=0))


def resolve_model_path(path) -> str:
    """A ``.keras`` / ``.tflite`` file, or a run directory (its ``model/model.keras``)."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(path):
        candidate = os.path.join(path, "model", "model.keras")
        if not os.path.isfile(candidate):
            raise ArgumentError("model", path, "must be a .keras or .tflite file, or a run directory holding "
                                "model/model.keras")
        return candidate
    if not os.path.isfile(path):
        raise ArgumentError("model", path, "must be an existing .keras or .tflite file or a run directory")
    if not path.endswith((".keras", ".tflite")):
        raise ArgumentError("model", path, "must end in .keras or .tflite")
    return path


def delivered_file(path) -> str | None:
    """The .tflite file a run directory delivered (``export/table.json``'s ``deliver``), or None
    (not a run directory, no export, or nothing passed its gate); a damaged table is a `DataError`
    naming it."""
    from tfxfer.utils.jsonfile import read_json

    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    table = os.path.join(path, "export", "table.json")
    if not os.path.isdir(path) or not os.path.isfile(table):
        return None
    deliver = read_json(table, what="export table").get("deliver")
    if not deliver:
        return None
    if not isinstance(deliver, str):
        raise DataError(f"export table {table} is damaged: `deliver` must be a file name, not "
                        f"{type(deliver).__name__}")
    deliver = deliver if os.path.isabs(deliver) else os.path.join(path, deliver)
    return deliver if os.path.isfile(deliver) else None


def _labels_beside(path: str) -> tuple[dict, str | None]:
    """``(labels.json beside path, its path)``, or ``({}, None)`` without one; a damaged file (not
    UTF-8 JSON, not an object, class names that are not a list of texts) is a `DataError` naming it."""
    from tfxfer.utils.jsonfile import read_json

    labels = os.path.join(os.path.dirname(path), "labels.json")
    if not os.path.isfile(labels):
        return {}, None
    info = read_json(labels, what="labels file")
    names = info.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DataError(f"labels file {labels} is damaged: `class_names` must be a list of texts, not "
                        f"{bounded_repr(names)}")
    task = info.get("task")
    if task is not None and not isinstance(task, str):
        raise DataError(f"labels file {labels} is damaged: `task` must be a text, not {bounded_repr(task)}")
    return info, labels


def _check_names(names, num: int, *, model: str, source: str | None) -> list:
    """``names`` (or ``"0"`` ... when None / empty), refused unless there is one per model output."""
    if not names:
        return [str(i) for i in range(num)]
    if len(names) != num:
        raise ModelError(f"{source} names {len(names)} class(es) but the model {model} has {num} outputs; "
                         "the labels file does not belong to this model")
    return list(names)


def open_model(path) -> LoadedModel:
    """A trained model ready to predict, with what it expects (input size, channels, class names).

    ``path``: a ``.keras`` file (loaded by `tfxfer.reliability.load_model`, in safe mode, not
    compiled), a ``.tflite`` file (LiteRT), or a run directory (its ``model/model.keras``);
    class names come from ``labels.json`` beside a ``.keras`` file or the ``.tflite`` sidecar.
    """
    path = resolve_model_path(path)
    if path.endswith(".tflite"):
        from tfxfer.export import read_sidecar
        from tfxfer.export.litert import load_interpreter

        interpreter = load_interpreter(path)
        shape = interpreter.get_input_details()[0]["shape"]
        num = int(interpreter.get_output_details()[0]["shape"][-1])
        if len(interpreter.get_input_details()) > 1 or len(shape) != 4:
            raise ArgumentError("model", path, "is a text .tflite file (token ids in): predict with the run's "
                                ".keras model, or on a device with export/wordpiece_tokenizer.py")
        from tfxfer.export.metadata import sidecar_path

        sidecar = read_sidecar(path) or {}
        names = _check_names(sidecar.get("class_names"), num, model=path, source=f"sidecar {sidecar_path(path)}")
        logits = (sidecar.get("output") or {}).get("kind") == "logits" if isinstance(sidecar.get("output"), dict) else False
        return LoadedModel(path, "tflite", interpreter, (int(shape[1]), int(shape[2])), int(shape[3]), names,
                           logits=logits)
    from tfxfer.reliability import load_model

    model = load_model(path, compile=False)
    shape = model.input_shape
    num = int(model.output_shape[-1])
    info, labels = _labels_beside(path)
    names = _check_names(info.get("class_names"), num, model=path, source=f"labels file {labels}")
    if len(shape) != 4:  # a text model: raw strings in
        task = info.get("task") or "text_classification"
        return LoadedModel(path, "keras", model, None, None, names, task=task)
    from tfxfer.export.metadata import model_task

    return LoadedModel(path, "keras", model, (int(shape[1]), int(shape[2])), int(shape[3]), names,
                       logits=model_task(model) == "logits")


def _read_text_lines(path: str) -> list[str]:
    """The non-empty lines of a ``.txt`` file, stripped; read as ``tfxfer evaluate`` reads text files
    (`tfxfer.data.text.read_text_file`: strict UTF-8, a BOM decides, a decoding error is a `DataError`
    naming the byte)."""
    from tfxfer.data.text import read_text_file

    lines = read_text_file(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line.strip() for line in lines if line.strip()]


def predict_text_inputs(model: LoadedModel, inputs, *, k: int = 3) -> list[tuple[str, str]]:
    """``[(text, result line)]`` for a text classifier (top classes) or NER model (entities).

    Each input is a text, or a ``.txt`` file whose non-empty lines are the texts. An NER model is
    recognised as `tfxfer.recipes.text_eval.model_task` recognises it (per-token outputs), with or
    without its ``labels.json``; without its tag names it is refused (`ArgumentError`).
    """
    from tfxfer.recipes.text_eval import TOKEN_TASK, model_task

    texts = []
    for item in inputs:
        if os.path.isfile(item) and item.endswith(".txt"):
            texts += _read_text_lines(item)
        else:
            texts.append(str(item))
    if model_task(model) == TOKEN_TASK:
        from tfxfer.text import predict_entities
        from tfxfer.text.tagging import parse_tag

        try:
            for name in model.class_names:
                parse_tag(name)
        except DataError:
            raise ArgumentError("model", model.path, f"is an NER model (per-token outputs) whose class names "
                                f"{bounded_repr(list(model.class_names))} are not tags: put the run's labels.json "
                                "(its tag names) beside it") from None
        found = predict_entities(model.model, texts, tag_names=model.class_names)
        return [(t, "; ".join(f"{e.text} [{e.type}] {e.score:.2f}" for e in ents) or "(no entities)")
                for t, ents in zip(texts, found)]
    from tfxfer.text import predict_texts

    ranked = top_k(predict_texts(model.model, texts), model.class_names, k=min(k, len(model.class_names)))
    return [(t, ", ".join(f"{c} {p:.3f}" for c, p in r)) for t, r in zip(texts, ranked)]


def top_k(probs, class_names, *, k: int = 3) -> list:
    """``[[(class, probability), ...] per row]``, best first."""
    probs = np.asarray(probs)
    out = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(str(class_names[i]), round(float(row[i]), 4)) for i in order])
    return out


def sample_indices(labels, limit: int, *, seed: int) -> np.ndarray:
    """Sorted indices of a seeded stratified sample of ``limit`` of the class ids ``labels``.

    Every class present gets at least one place when ``limit`` allows it, the rest are shared in
    proportion to the class sizes (largest remainders first, ties broken by the seed); within a class
    the members are drawn at random. ``limit`` at or above ``len(labels)`` keeps everything.

    Example:
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> kept = sample_indices(labels, 4, seed=0)
        >>> len(kept), np.bincount(labels[kept]).tolist()
        (4, [2, 2])
    """
    labels = np.asarray(labels)
    if labels.ndim > 1:  # one-hot (or multi-hot) rows: stratified by their first class
        labels = labels.argmax(axis=1)
    n, limit = len(labels), int(limit)
    if limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == k)) for k in range(int(inverse.max()) + 1)]
    sizes = np.array([len(m) for m in members])
    quota = np.ones(len(sizes), int) if limit >= len(sizes) else np.zeros(len(sizes), int)
    rest = limit - int(quota.sum())
    share = rest * (sizes - quota) / max(int((sizes - quota).sum()), 1)
    extra = np.floor(share).astype(int)
    order = np.lexsort((rng.random(len(sizes)), -(share - extra)))  # largest remainder first, seeded ties
    extra[order[:rest - int(extra.sum())]] += 1
    quota += extra
    return np.sort(np.concatenate([m[:q] for m, q in zip(members, quota)])).astype(np.int64)


def _dataset_batches(dataset, limit: int | None):
    """``(float32 images, labels)`` numpy batches of a batched dataset, at most ``limit`` images in all."""
    count = 0
    for x, y in dataset.as_numpy_iterator():
        if limit is not None and count + len(x) > limit:
            x, y = x[:limit - count], y[:limit - count]
        count += len(x)
        if len(x):
            yield np.asarray(x, np.float32), np.asarray(y)
        if limit is not None and count >= limit:
            return


def evaluation_batches(source: str, *, image_size, channels: int, split: str = "test", class_names=None,
                       limit: int | None = None, sample_seed: int | None = None, skipped: list | None = None,
                       sample: dict | None = None, batch_size: int = 64):
    """``(batches, class_names)``: the data `evaluation_data` returns, as an iterator of ``(float32 images,
    labels)`` batches of at most ``batch_size`` images in the same order, decoded as they are asked for
    (nothing holds more than one batch of pixels). The arguments are `evaluation_data`'s; the data is
    opened, and its classes checked against ``class_names``, before this returns.

    With ``class_names`` (the model's), labels are mapped to them by name and the names returned are
    the model's: data holding only some of the model's classes is evaluated on those (the others get
    no support); a class the model does not know is a `DataError` naming it. A folder or table may hold a
    single class (the loaders are asked for ``min_classes=1``): e.g. only ``defective/``, to measure the
    recall of that class."""
    from tfxfer.data import image_dataset_from_csv, image_dataset_from_folder, list_datasets

    def draw(labels):
        """The kept positions, or None to keep the first ``limit`` (or all)."""
        if not limit or sample_seed is None or len(labels) <= limit:
            return None
        keep = sample_indices(labels, limit, seed=sample_seed)
        if sample is not None:
            sample.update(size=int(len(keep)), of=int(len(labels)), seed=int(sample_seed), indices=keep)
        return keep

    key = source.strip().lower().replace("-", "_")
    if key in list_datasets():
        from tfxfer.data import load
        from tfxfer.data.tfdata import array_pipeline

        loaded = load(key)
        if split not in ("train", "val", "test"):
            raise ArgumentError("split", split, 'must be "train", "val" or "test"')
        x, y = getattr(loaded, split)
        keep = draw(y)
        if keep is not None:
            x, y = x[keep], y[keep]
        elif limit:
            x, y = x[:limit], y[:limit]
        ds = array_pipeline(x, y, image_size=tuple(image_size), batch_size=batch_size, training=False,
                            channels=channels, cache=None)
        batches, names = _dataset_batches(ds, None), list(loaded.class_names)
    else:
        path = os.path.abspath(os.path.expanduser(source))
        color = "grayscale" if channels == 1 else "rgb"
        common = dict(image_size=tuple(image_size), batch_size=batch_size, color_mode=color, shuffle=False,
                      cache=None,  # read once, in order: no copy of every image kept in memory
                      min_classes=1)  # evaluation data may hold one class of the model's
        if os.path.isdir(path):
            data = image_dataset_from_folder(path, class_names=None, **common)
        elif os.path.isfile(path):
            delimiter = "\t" if path.lower().endswith((".tsv", ".tab")) else ","  # as audit_data.image_groups
            data = image_dataset_from_csv(path, delimiter=delimiter, **common)
        else:
            raise ArgumentError("data", source, "must be a packaged data set name, a folder or a CSV table")
        if skipped is not None:
            skipped.extend(data.summary.skipped)
        keep = draw(np.asarray(data.labels["train"])) if data.files and "train" in data.labels else None
        if keep is not None:  # decode only the sampled files, as the pipeline decodes them
            from tfxfer.recipes.image_inputs import iter_images

            files, labels = data.files["train"], np.asarray(data.labels["train"])[keep]

            def sampled():
                done = 0
                for _, images in iter_images([files[i] for i in keep], image_size=image_size, channels=channels,
                                             batch_size=batch_size):
                    yield images, labels[done:done + len(images)]
                    done += len(images)

            batches = sampled()
        else:
            batches = _dataset_batches(data.train, limit)
        names = list(data.class_names)
    if class_names is None or list(class_names) == names:
        return batches, names
    model_names = [str(c) for c in class_names]
    unknown = [n for n in names if str(n) not in model_names]
    if unknown:
        raise DataError(f"{source}: the data's class(es) {bounded_repr(unknown)} are not among the model's classes "
                        f"{bounded_repr(model_names)}")
    remap = np.array([model_names.index(str(n)) for n in names])  # by name: the data may hold only some classes
    return ((images, remap[np.asarray(labels)]) for images, labels in batches), list(class_names)


def evaluation_data(source: str, *, image_size, channels: int, split: str = "test", class_names=None,
                    limit: int | None = None, sample_seed: int | None = None, skipped: list | None = None,
                    sample: dict | None = None):
    """``(images, labels, class_names)`` for a packaged data set split, a folder or a CSV / TSV table
    (`evaluation_batches` gives them a batch at a time).

    ``limit`` keeps the first ``limit`` examples in the data's order; with ``sample_seed`` it keeps a
    seeded stratified sample instead (`sample_indices`: every class, in proportion; a folder read class
    by class would otherwise give the first classes only), decoding only the images it keeps, in the
    data's order. ``sample``, a dict, then receives ``{"size", "of", "seed", "indices"}`` (the kept
    positions in the split / the loader's file list) when a sample was drawn. ``skipped``, a list,
    receives the loader's ``{"path", "reason", "detail"}`` entry of each file or row it left out
    (unreadable images, repeated rows...; `tfxfer.recipes.image_inputs.skip_note` counts them by
    reason)."""
    batches, names = evaluation_batches(source, image_size=image_size, channels=channels, split=split,
                                        class_names=class_names, limit=limit, sample_seed=sample_seed,
                                        skipped=skipped, sample=sample)
    images, labels = [], []
    for x, y in batches:
        images.append(x)
        labels.append(y)
    if not images:
        raise DataError(f"{source} yielded no images")
    return np.concatenate(images), np.concatenate(labels), names
