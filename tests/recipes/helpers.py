"""Recipe paths and the overrides that make a recipe run end to end in about a minute on 2 cores
(the tiny data: `tests.factories`)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recipe(name: str) -> str:
    return os.path.join(ROOT, "pipelines", f"{name}.yaml")


def tiny_overrides(folder, *, extra=()):
    return [f"data.source={folder}", "data.max_train=null", "data.max_eval=null", "data.validation_split=0.2",
            "data.test_split=0.2", "model.weights=null", "model.input_size=[32, 32]", "train.head_epochs=1",
            "train.epochs=1", "train.batch_size=8", "export.num_calibration=16", "export.bench_runs=2",
            "export.threads=[1]", "export.thresholds.int8.max_accuracy_drop=100", *extra]


def tiny_text_overrides(source, preset, *, extra=()):
    return [f"data.source={source}", "data.max_train=null", "data.max_eval=null", "data.validation_split=0.2",
            "data.test_split=0.2", f"model.backbone={preset}", "model.weights=null", "model.sequence_length=16",
            "train.batch_size=8", "train.head_epochs=1", "train.epochs=0", "train.base_lr=1e-2",
            "export.benchmark=false", *extra]
