"""`evaluation_data(limit=, sample_seed=)`: a seeded random subset, not the first classes of a folder
read class by class (what `tfxfer rank --max-samples` reads)."""

import numpy as np

from tests.factories import make_image_folder
from tfxfer.recipes.inference import evaluation_data


def test_a_limited_folder_read_is_a_seeded_sample_of_every_class(tmp_path):
    folder = make_image_folder(tmp_path / "images")
    _, all_labels, names = evaluation_data(str(folder), image_size=(16, 16), channels=3, split="train")
    per_class = np.bincount(all_labels)
    limit = int(per_class[0])  # as many as the first class holds
    _, first, _ = evaluation_data(str(folder), image_size=(16, 16), channels=3, split="train", limit=limit)
    assert set(first.tolist()) == {0}  # the data's order: the first class only
    _, a, _ = evaluation_data(str(folder), image_size=(16, 16), channels=3, split="train", limit=limit, sample_seed=0)
    _, b, _ = evaluation_data(str(folder), image_size=(16, 16), channels=3, split="train", limit=limit, sample_seed=0)
    assert len(a) == limit and len(set(a.tolist())) > 1 and a.tolist() == b.tolist()  # mixed, and reproducible
    assert len(names) == len(per_class)
