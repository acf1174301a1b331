"""class_weight dicts and sigmoid-head targets checked against the head before training."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, DataError
from tfxfer.train.fine_tune import fine_tune

X, Y = tiny_images(24, size=16, classes=3)
KW = dict(head_epochs=1, epochs=0, batch_size=8, verbose=0)


@pytest.fixture(scope="module")
def model():
    return tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=0)


@pytest.mark.parametrize("class_weight, message", [
    ({0: 1.0, 1: 2.0}, r"must give a weight to every class of the 3-class head; missing \[2\]"),
    ({0: 1.0, 1: 2.0, 2: -1.0}, "must map classes to finite weights >= 0; class 2 has -1.0"),
    ({0: 1.0, 1: 1.0, 2: float("nan")}, "class 2 has nan"),
    ({0: 1.0, 1: 1.0, 2: 1.0, 7: 1.0}, r"must have class ids in \[0, 2\] as keys for this 3-class head; found \[7\]"),
    ({"a": 1.0, 0: 1.0, 1: 1.0, 2: 1.0}, r"found \['a'\]"),
    ({0: 0.0, 1: 0.0, 2: 0.0}, "at least one class a weight above 0"),
])
def test_a_class_weight_dict_that_the_head_cannot_use_is_named(model, class_weight, message):
    with pytest.raises(ArgumentError, match="`class_weight` .*" + message):
        fine_tune(model, (X, Y), class_weight=class_weight, **KW)


def test_a_complete_class_weight_dict_trains_and_is_recorded_with_plain_keys(model):
    result = fine_tune(model, (X, Y), class_weight={np.int64(0): 1, 1: 2.0, 2: 0.5}, **KW)
    assert result.settings["class_weight"] == {0: 1.0, 1: 2.0, 2: 0.5}


def test_sigmoid_heads_take_multi_hot_rows_in_0_1():
    multilabel = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=0, task="multilabel")
    with pytest.raises(DataError, match=r"`train` labels of this 3-label \(sigmoid\) head must be multi-hot rows of "
                                        r"width 3; got shape \(24,\)"):
        fine_tune(multilabel, (X, Y), **KW)
    with pytest.raises(DataError, match=r"`val` labels of a sigmoid head must be targets in \[0, 1\].*0\.\.5"):
        fine_tune(multilabel, (X, np.eye(3)[Y]), val=(X, np.eye(3)[Y] * 5), **KW)
    assert len(fine_tune(multilabel, (X, np.eye(3)[Y]), **KW).history["loss"]) == 1
