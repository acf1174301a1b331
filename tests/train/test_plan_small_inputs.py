"""The plan's small-input rule: images of 64 px or less fine-tune with no layer decay and a 2x higher peak."""

from __future__ import annotations

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.plan import SMALL_INPUT, auto_plan


def test_small_inputs_pick_a_stronger_unfreezing_and_large_ones_keep_the_guide_rates():
    small = auto_plan(n=1000, text=False, groups=8, cached=True, image_size=SMALL_INPUT)
    large = auto_plan(n=1000, text=False, groups=8, cached=True, image_size=SMALL_INPUT + 1)
    unknown = auto_plan(n=1000, text=False, groups=8, cached=True)
    assert (small["layer_decay"], small["unfreeze_lr_factor"]) == (1.0, 0.2)
    assert (large["layer_decay"], large["unfreeze_lr_factor"]) == (0.8, 0.1) == \
        (unknown["layer_decay"], unknown["unfreeze_lr_factor"])
    assert {k: v for k, v in small.items() if k not in ("layer_decay", "unfreeze_lr_factor")} == \
        {k: v for k, v in large.items() if k not in ("layer_decay", "unfreeze_lr_factor")}
    text = auto_plan(n=1000, text=True, groups=8, cached=True, image_size=16)  # not an image: no effect
    assert (text["layer_decay"], text["unfreeze_lr_factor"]) == (0.9, 0.1)


def test_fine_tune_reads_the_input_side_and_an_explicit_value_wins():
    data = tiny_images(16, size=16)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    picked = fine_tune(model, data, head_epochs=1, epochs=1, batch_size=8, verbose=0).settings
    assert (picked["layer_decay"], picked["unfreeze_lr_factor"]) == (1.0, 0.2)
    chosen = fine_tune(model, data, head_epochs=1, epochs=1, batch_size=8, verbose=0, layer_decay=0.5).settings
    assert chosen["layer_decay"] == 0.5 and "layer_decay" not in chosen["picked"]
