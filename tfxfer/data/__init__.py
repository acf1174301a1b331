"""Data in, safely and fast: image and text loaders, packaged real data sets, tf.data pipelines.

Image loaders return an `ImageData` (train/val/test ``tf.data.Dataset`` s of float32 0-255 RGB
batches, ``class_names``, ``summary``); text loaders return `TextData` / `TokenData`; packaged
data sets load with `load(name)`.

Example:
    >>> from tfxfer import data
    >>> data.list_datasets()[:3]
    ['elpv', 'animal_mnist', 'fashion_mnist']
    >>> data.describe("fashion_mnist").sizes
    {'train': 54000, 'val': 6000, 'test': 10000}
"""

from tfxfer.data.arrays import image_dataset_from_arrays, image_dataset_from_dataset
from tfxfer.data.conll import TokenData, load_conll
from tfxfer.data.hygiene import (
    SKIP_REASONS,
    DataSummary,
    DataWarning,
    class_weights,
    find_duplicates,
    imbalance_report,
)
from tfxfer.data.images import image_dataset_from_csv, image_dataset_from_folder
from tfxfer.data.tfdata import AUTOTUNE
from tfxfer.data.registry import DatasetInfo, LoadedDataset, describe, list_datasets, load
from tfxfer.data.result import ImageData, Split
from tfxfer.data.scan import IMAGE_EXTENSIONS, scan_images
from tfxfer.data.splits import random_split, stratified_split
from tfxfer.data.text import TextData, load_texts

__all__ = [
    "AUTOTUNE",
    "IMAGE_EXTENSIONS",
    "SKIP_REASONS",
    "DataSummary",
    "DataWarning",
    "DatasetInfo",
    "ImageData",
    "LoadedDataset",
    "Split",
    "TextData",
    "TokenData",
    "class_weights",
    "describe",
    "find_duplicates",
    "image_dataset_from_arrays",
    "image_dataset_from_csv",
    "image_dataset_from_dataset",
    "image_dataset_from_folder",
    "imbalance_report",
    "list_datasets",
    "load",
    "load_conll",
    "load_texts",
    "random_split",
    "scan_images",
    "stratified_split",
]
