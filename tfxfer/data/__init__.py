"""Data in, safely and fast: image and text loaders, packaged real data sets, tf.data pipelines.

Image loaders return an `ImageData` (train/val/test ``tf.data.Dataset`` s of float32 0-255 RGB
batches, ``class_names``, ``summary``); text loaders return `TextData` / `TokenData`; packaged
data sets load with `load(name)`; `domain_pair(name)` gives a source/target pair of real domains.

Names are served lazily: ``tfxfer.data.list_datasets()``, the text and CoNLL loaders and the
hygiene helpers work without importing TensorFlow; the image loaders import it on first use.

Example:
    >>> from tfxfer import data
    >>> data.list_datasets()[:3]
    ['elpv', 'animal_mnist', 'fashion_mnist']
    >>> data.describe("fashion_mnist").sizes
    {'train': 54000, 'val': 6000, 'test': 10000}
"""

from tfxfer.utils.lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "AUTOTUNE": "tfxfer.data.tfdata",
    "IMAGE_EXTENSIONS": "tfxfer.data.scan",
    "MAX_IMAGE_PIXELS": "tfxfer.data.scan",
    "SKIP_REASONS": "tfxfer.data.hygiene",
    "DataSummary": "tfxfer.data.hygiene",
    "DataWarning": "tfxfer.data.hygiene",
    "DatasetInfo": "tfxfer.data.registry",
    "DomainPair": "tfxfer.data.domains",
    "ImageData": "tfxfer.data.result",
    "LoadedDataset": "tfxfer.data.registry",
    "Split": "tfxfer.data.splits",
    "TextData": "tfxfer.data.text",
    "TokenData": "tfxfer.data.conll",
    "check_image_bytes": "tfxfer.data.scan",
    "class_weights": "tfxfer.data.hygiene",
    "describe": "tfxfer.data.registry",
    "domain_pair": "tfxfer.data.domains",
    "find_duplicates": "tfxfer.data.hygiene",
    "image_dataset_from_arrays": "tfxfer.data.arrays",
    "image_dataset_from_csv": "tfxfer.data.images",
    "image_dataset_from_dataset": "tfxfer.data.arrays",
    "image_dataset_from_folder": "tfxfer.data.images",
    "imbalance_report": "tfxfer.data.hygiene",
    "label_conflicts": "tfxfer.data.hygiene",
    "list_datasets": "tfxfer.data.registry",
    "list_domain_pairs": "tfxfer.data.domains",
    "load": "tfxfer.data.registry",
    "load_conll": "tfxfer.data.conll",
    "load_texts": "tfxfer.data.text",
    "lookalike_labels": "tfxfer.data.hygiene",
    "random_split": "tfxfer.data.splits",
    "read_regular_file": "tfxfer.data.scan",
    "scan_images": "tfxfer.data.scan",
    "stratified_split": "tfxfer.data.splits",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports("tfxfer.data", _EXPORTS)
