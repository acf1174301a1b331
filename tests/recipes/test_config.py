"""Recipe configuration: strict YAML, typed dataclasses, suggestions, --set overrides."""

import dataclasses
import glob
import os

import pytest

from tfxfer.errors import ConfigError
from tfxfer.recipes.config import (
    AUGMENT_POLICIES,
    EXPORT_VARIANTS,
    THRESHOLD_KEYS,
    RunConfig,
    config_to_yaml,
)
from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.recipe_yaml import parse_override, parse_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "pipelines", "*.yaml")))


def test_recipes_exist_and_load():
    names = {os.path.basename(p) for p in RECIPES}
    assert {"image_classification.yaml", "quick.yaml", "text_classification.yaml", "ner.yaml", "edge.yaml"} <= names
    for path in RECIPES:
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig)
        assert cfg.data.source, path
        assert cfg.name == os.path.splitext(os.path.basename(path))[0] or cfg.name


def test_defaults_and_types():
    cfg = load_config(text="data: {source: animal_mnist}\ntrain: {base_lr: 1e-3, epochs: 4}\n"
                           "model: {input_size: [64, 48]}\nexport: {variants: int8}")
    assert cfg.train.base_lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string: accepted for floats
    assert cfg.train.epochs == 4 and cfg.model.input_size == (64, 48)
    assert cfg.export.variants == ("int8",)  # a single value where a list is expected
    assert cfg.name == "run"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("text, message", [
    ("trian: {epochs: 1}", r"unknown key `trian`\. Did you mean `train`\?"),
    ("train: {head_epochz: 2}", r"unknown key `train\.head_epochz`\. Did you mean `train\.head_epochs`\?"),
    ("export: {thresholds: {int8: {max_acuracy_drop: 1}}}",
     r"`export\.thresholds\.int8\.max_acuracy_drop` must be one of .* Did you mean 'max_accuracy_drop'\?"),
    ("model: {zzzz: 1}", r"unknown key `model\.zzzz`\. Valid keys here: backbone"),
])
def test_unknown_keys_name_the_path_and_suggest(text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(text="data: {source: x}\n" + text)


@pytest.mark.parametrize("text, message", [
    ("train: {epochs: three}", r"`train\.epochs` must be an integer\. Received: 'three' \(of type str\)"),
    ("train: {epochs: 2.5}", r"`train\.epochs` must be an integer"),
    ("train: {epochs: true}", r"`train\.epochs` must be an integer"),
    ("train: {base_lr: fast}", r"`train\.base_lr` must be a number"),
    ("train: {cached_features: 1}", r"`train\.cached_features` must be true or false"),
    ("model: {input_size: [32]}", r"`model\.input_size` must be a list of 2 values"),
    ("model: {input_size: [32, x]}", r"`model\.input_size\[1\]` must be an integer"),
    ("train: 5", r"`train` must be a mapping"),
    ("train: {optimizer: adma}", r"`train\.optimizer` must be one of 'adam', 'adamw', 'sgd'\. Received: 'adma'\. "
                                 r"Did you mean 'adam'\?"),
    ("export: {variants: [float32], deliver: int8}", r"`export\.deliver` must be one of 'float32'"),
    ("data: {source: x, validation_split: 1.5}", r"`data\.validation_split` must be a finite number in \[0, 1\)"),
    # every key's range, checked before any stage runs (issue 15)
    ("train: {base_lr: -1}", r"`train\.base_lr` must be a finite number > 0\. Received: -1\.0"),
    ("train: {base_lr: 0}", r"`train\.base_lr` must be a finite number > 0"),
    ("train: {base_lr: .nan}", r"`train\.base_lr` must be a finite number > 0\. Received: nan"),
    ("train: {base_lr: .inf}", r"`train\.base_lr` must be a finite number > 0\. Received: inf"),
    ("train: {unfreeze_lr_factor: 0}", r"`train\.unfreeze_lr_factor` must be a finite number > 0"),
    ("train: {layer_decay: 1.5}", r"`train\.layer_decay` must be a finite number in \(0, 1\]"),
    ("train: {warmup_epochs: -1}", r"`train\.warmup_epochs` must be a finite number >= 0\. Received: -1\.0"),
    ("train: {warmup_epochs: .nan}", r"`train\.warmup_epochs` must be a finite number >= 0\. Received: nan"),
    ("train: {epochs: -1}", r"`train\.epochs` must be an integer >= 0"),
    ("train: {stages: {1: -2}}", r"`train\.stages\.1` must be an integer \(a layer count\) >= 0"),
    ("seed: -3", r"`seed` must be an integer >= 0"),
    ("model: {dropout: 1.0}", r"`model\.dropout` must be a finite number in \[0, 1\)"),
    ("model: {hidden_units: 0}", r"`model\.hidden_units` must be an integer >= 1"),
    ("model: {input_size: [100000, 32]}", r"`model\.input_size\[0\]` must be an integer in \[1, 4096\]"),
    ("distill: {temperature: 0}", r"`distill\.temperature` must be a finite number > 0"),
    ("distill: {alpha: 2}", r"`distill\.alpha` must be a finite number in \[0, 1\]"),
    ("quantize: {learning_rate: -1e-5}", r"`quantize\.learning_rate` must be a finite number > 0"),
    ("quantize: {sparsity: 1}", r"`quantize\.sparsity` must be a finite number in \[0, 1\)"),
    ("export: {threads: [1, 0]}", r"`export\.threads\[1\]` must be a thread count >= 1\. Received: 0"),
    ("export: {thresholds: {int8: {max_accuracy_drop: .nan}}}",
     r"`export\.thresholds\.int8\.max_accuracy_drop` must be a finite number >= 0\. Received: nan"),
    ("export: {thresholds: {int8: {max_accuracy_drop: -0.1}}}", r"must be a finite number >= 0"),
    ("report: {reliability_bins: 0}", r"`report\.reliability_bins` must be an integer >= 1"),
    ("report: {misclassified: -1}", r"`report\.misclassified` must be an integer >= 0"),
    ("data: {source: x, validation_split: 0.5, test_split: 0.5}", r"must be < 1 \(something must be left"),
    ("train: {head_epochs: 0, epochs: 0}", r"cannot both be 0"),
])
def test_wrong_types_and_values(text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(text=text if text.startswith("data:") else "data: {source: x}\n" + text)


def test_missing_source_and_bad_yaml_and_duplicates(tmp_path):
    with pytest.raises(ConfigError, match=r"`data\.source` is required"):
        load_config(text="train: {epochs: 1}")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3"):
        load_config(text="data: {source: x}\ntrain: [epochs: 1\n")
    with pytest.raises(ConfigError, match=r"duplicate key `epochs` \(line 4\)"):
        load_config(text="data: {source: x}\ntrain:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=r"must be a mapping of sections"):
        load_config(text="- a\n- b\n")
    with pytest.raises(ConfigError, match=r"recipe file not found"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "r.yaml"
    path.write_text("data: {source: x}\ntrain: {epoch: 1}\n")
    with pytest.raises(ConfigError, match=r"^r\.yaml: unknown key `train\.epoch`\. Did you mean `train\.epochs`\?$"):
        load_config(path)


def test_overrides_are_yaml_scalars():
    cfg = load_config(text="data: {source: x}", overrides=[
        "train.epochs=3", "train.base_lr=2.5e-4", "model.weights=null", "model.input_size=[32, 32]",
        "data.source=/some/my folder", "export.thresholds.int8.max_accuracy_drop=2", "train.stages={0: 1, 2: 3}",
        "name=my-run.v2"])
    assert cfg.train.epochs == 3 and cfg.train.base_lr == pytest.approx(2.5e-4)
    assert cfg.model.weights is None and cfg.model.input_size == (32, 32)
    assert cfg.data.source == "/some/my folder" and cfg.name == "my-run.v2"
    assert cfg.export.thresholds["int8"]["max_accuracy_drop"] == 2.0
    assert dict(cfg.train.stages) == {0: 1, 2: 3}
    assert parse_override("a.b=") == (["a", "b"], None)


@pytest.mark.parametrize("text", ["photos #2", "2024-05-01", "on", "null", "[a, b]", "'quoted'", " x ", "a=b"])
def test_overrides_of_text_keys_keep_the_text(text):
    cfg = load_config(text="data: {source: x}", overrides=[f"data.source={text}", f"model.backbone={text}"])
    assert cfg.data.source == text and cfg.model.backbone == text  # not a comment, a date, a boolean, None


def test_overrides_of_optional_text_keys_read_null_as_none():
    for text in ("null", "~", "", "NULL"):
        assert load_config(text="data: {source: x}", overrides=[f"model.weights={text}"]).model.weights is None
    cfg = load_config(text="data: {source: x}", overrides=["model.weights=on", "distill.teacher_weights=a #1.h5"])
    assert cfg.model.weights == "on" and cfg.distill.teacher_weights == "a #1.h5"


def test_overrides_of_integer_keyed_stages():
    text = "data: {source: x}\ntrain: {stages: {0: 3}}"
    assert dict(load_config(text=text, overrides=["train.stages.0=5"]).train.stages) == {0: 5}
    assert dict(load_config(text=text, overrides=["train.stages.2=4"]).train.stages) == {0: 3, 2: 4}
    assert dict(load_config(text="data: {source: x}", overrides=["train.stages.1=2"]).train.stages) == {1: 2}
    with pytest.raises(ConfigError, match=r"`train\.stages\.x` must be an integer\. Received: 'x'"):
        load_config(text=text, overrides=["train.stages.x=4"])


def test_errors_about_a_set_value_name_the_set_item_not_the_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data: {source: x}\ntrain: {epochs: 2}\n")
    for item, message in [("train.epochs=many", r"^--set train\.epochs=many: `train\.epochs` must be an integer"),
                          ("train.base_lr=-1", r"^--set train\.base_lr=-1: `train\.base_lr` must be a finite"),
                          ("train={epochs: -1}", r"^--set train=\{epochs: -1\}: `train\.epochs` must be an integer"),
                          ("train.epochs={a: 1, a: 2}", r"^--set train\.epochs=\{a: 1, a: 2\}: duplicate key `a`")]:
        with pytest.raises(ConfigError, match=message):
            load_config(path, overrides=[item])
    path.write_text("data: {source: x}\ntrain: {epochs: -1}\n")
    with pytest.raises(ConfigError, match=r"^r\.yaml: `train\.epochs` must be an integer"):  # the file's own key
        load_config(path, overrides=["seed=1", "train.base_lr=0.1"])


def test_yaml_merge_keys_work_and_explicit_keys_win():
    cfg = load_config(text="data: {source: x}\ntrain:\n  <<: {batch_size: 8, epochs: 1}\n  epochs: 4\n")
    assert cfg.train.batch_size == 8 and cfg.train.epochs == 4
    raw = parse_yaml("base: &b {a: 1, b: 2}\nc: {<<: *b, b: 3}\nd: {<<: [{x: 1}, {x: 2}]}")
    assert raw["c"] == {"a": 1, "b": 3} and raw["d"] == {"x": 1}  # as yaml.safe_load: the first merged wins
    with pytest.raises(ConfigError, match=r"duplicate key `b` \(line 1\)"):
        parse_yaml("c: {<<: {a: 1}, b: 2, b: 3}")
    with pytest.raises(ConfigError, match=r"duplicate key `a` \(line 1\)"):  # inside a merged mapping
        parse_yaml("c: {<<: {a: 1, a: 2}}")
    with pytest.raises(ConfigError, match=r"merges a mapping into itself"):
        parse_yaml("a: &a {<<: *a, x: 1}")


def test_a_yaml_merge_key_bomb_is_refused_quickly():
    import time

    lines = ["a0: &a0 {" + ", ".join(f"k{i}: 1" for i in range(10)) + "}"]
    lines += [f"a{j}: &a{j} {{<<: [{', '.join([f'*a{j - 1}'] * 9)}], z{j}: 1}}" for j in range(1, 12)]
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"more than 10000 keys once YAML merge keys \(<<\) are expanded"):
        parse_yaml("\n".join(lines))
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("file_name, name", [("my recipe.yaml", "my_recipe"), ("recette_été.yaml", "recette_ete"),
                                             (".hidden.yaml", "hidden"), ("run 1 (copy).yml", "run_1_copy_")])
def test_a_recipe_without_name_takes_a_valid_name_from_its_file(tmp_path, file_name, name):
    path = tmp_path / file_name
    path.write_text("data: {source: x}\n")
    assert load_config(path).name == name
    assert load_config(path, overrides=["name=mine"]).name == "mine"


def test_a_file_name_with_no_valid_character_asks_for_a_name(tmp_path):
    path = tmp_path / "写真.yaml"
    path.write_text("data: {source: x}\n")
    with pytest.raises(ConfigError, match=r"^写真\.yaml: the recipe has no `name:`, and the run name is taken from its "
                                          r"file name \('写真'\).*add `name: \.\.\.` to the recipe or pass --set name="):
        load_config(path)
    assert load_config(path, overrides=["name=photos"]).name == "photos"


@pytest.mark.parametrize("item, message", [
    ("train.epoch=3", r"--set train\.epoch=3: unknown key `train\.epoch`\. Did you mean `train\.epochs`\?"),
    ("trainn.epochs=3", r"unknown key `trainn`\. Did you mean `train`\?"),
    ("train.epochs.x=3", r"`train\.epochs` is a single value, it has no key `x`"),
    ("train.epochs", r"--set expects key\.sub=value"),
    ("=3", r"--set expects key\.sub=value"),
    ("train.epochs=many", r"`train\.epochs` must be an integer"),
])
def test_bad_overrides(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config(text="data: {source: x}", overrides=[item])


@pytest.mark.parametrize("name", ["../../escaped", "runs/x", "my run", ".hidden", "", "x" * 65])
def test_run_name_must_be_a_plain_file_name(name):
    with pytest.raises(ConfigError, match=r"`name` names the run folder .* Received: "):
        load_config(text="data: {source: x}", overrides=[f"name={name}"])


def test_resolved_config_round_trips():
    cfg = load_config(text="data: {source: animal_mnist}\nexport: {thresholds: {int8: {max_accuracy_drop: 2}}}",
                      overrides=["train.stages={0: 1}", "model.input_size=[40, 40]"])
    again = load_config(text=config_to_yaml(cfg))
    assert again.to_dict() == cfg.to_dict()


def test_static_choices_match_the_library():
    from tfxfer.augment import list_policies
    from tfxfer.export import VARIANTS, Thresholds

    assert tuple(list_policies()) == AUGMENT_POLICIES
    assert tuple(VARIANTS) == EXPORT_VARIANTS
    from tfxfer.recipes.config import STRATEGIES
    from tfxfer.reliability import STRATEGIES as LIBRARY_STRATEGIES

    assert STRATEGIES == LIBRARY_STRATEGIES
    assert tuple(f.name for f in dataclasses.fields(Thresholds)) == THRESHOLD_KEYS


def test_strategy_and_determinism_keys():
    cfg = load_config(text="data: {source: x}", overrides=["train.strategy=mirrored", "train.deterministic=true"])
    assert cfg.train.strategy == "mirrored" and cfg.train.deterministic is True
    with pytest.raises(ConfigError, match=r"`train.strategy` must be one of 'default', .*Received: 'horovod'"):
        load_config(text="data: {source: x}", overrides=["train.strategy=horovod"])
    with pytest.raises(ConfigError, match=r"`train.strategy` is applied by image recipes only"):
        load_config(text="task: text_classification\ndata: {source: x}\nmodel: {backbone: y}",
                    overrides=["train.strategy=mirrored"])


def test_label_smoothing_and_weight_averaging_keys():
    from tfxfer.recipes.image_stages import _train_section

    cfg = load_config(text="data: {source: x}", overrides=["train.label_smoothing=0.1", "train.average_weights=ema"])
    assert cfg.train.label_smoothing == 0.1 and cfg.train.average_weights == "ema"
    assert _train_section(cfg)["label_smoothing"] == 0.1
    plain = load_config(text="data: {source: x}")
    assert "label_smoothing" not in _train_section(plain) and "average_weights" not in _train_section(plain)
    with pytest.raises(ConfigError, match=r"`train.average_weights` must be one of 'none', 'ema', 'swa'.*'swag'"):
        load_config(text="data: {source: x}", overrides=["train.average_weights=swag"])
    with pytest.raises(ConfigError, match=r"`train.label_smoothing` must be a finite number in \[0, 1\)"):
        load_config(text="data: {source: x}", overrides=["train.label_smoothing=1.0"])
    with pytest.raises(ConfigError, match=r"`train.label_smoothing` is applied by image recipes only"):
        load_config(text="task: text_classification\ndata: {source: x}\nmodel: {backbone: y}",
                    overrides=["train.label_smoothing=0.1"])


# -- hostile recipe files (issue 15) -----------------------------------------------------------
BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, a in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi"))


def test_a_yaml_alias_bomb_is_refused_quickly():
    import time

    assert len(BOMB) < 400
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"more than 10000 values once YAML aliases are expanded") as info:
        load_config(text=BOMB)
    assert time.perf_counter() - t0 < 2.0 and len(str(info.value)) < 300
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb"):  # the same bomb as a --set value (a key read as YAML)
        load_config(text="data: {source: x}", overrides=["export.variants=" + _flow_bomb()])
    assert time.perf_counter() - t0 < 2.0


def _flow_bomb():
    return "{a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")) + "}"


def test_recursive_and_deep_recipes_are_refused():
    with pytest.raises(ConfigError, match=r"nested more than 16 levels"):
        load_config(text="a: &a [*a]")
    with pytest.raises(ConfigError, match=r"nested more than 16 levels"):
        load_config(text="data: {source: x}\ntrain: " + "[" * 40 + "]" * 40)


def test_bad_values_are_shown_as_bounded_excerpts():
    with pytest.raises(ConfigError) as info:
        load_config(text="data: {source: [" + ", ".join(["x" * 500] * 50) + "]}")
    assert "`data.source` must be a string" in str(info.value) and len(str(info.value)) < 500
    with pytest.raises(ConfigError) as info:
        load_config(text="train: {" + "k" * 1000 + ": 1}")
    assert "unknown key" in str(info.value) and len(str(info.value)) < 800
    with pytest.raises(ConfigError) as info:
        load_config(text="[" + ", ".join(["y" * 300] * 100) + "]")
    assert "must be a mapping of sections" in str(info.value) and len(str(info.value)) < 800


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_recipes_with_a_byte_order_mark_load(tmp_path, encoding):
    path = tmp_path / "r.yaml"
    path.write_bytes("data: {source: animal_mnist}\ntrain: {epochs: 3}  # épocas\n".encode(encoding))
    if encoding == "utf-16-be":  # no BOM: a clear error, not UnicodeDecodeError
        with pytest.raises(ConfigError, match=r"is not UTF-8 text .* no byte-order mark; save it as UTF-8"):
            load_config(path)
        return
    cfg = load_config(path)
    assert cfg.data.source == "animal_mnist" and cfg.train.epochs == 3


def test_oversized_and_non_file_recipes(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    with pytest.raises(ConfigError, match=r"at most 1048576 bytes"):
        load_config(path)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"recipe file not found"):  # a FIFO would block a read forever
        load_config(fifo)


def test_override_key_paths_are_bounded():
    with pytest.raises(ConfigError, match=r"the key path is too long") as info:
        load_config(text="data: {source: x}", overrides=["train." + "a." * 5000 + "b=1"])
    assert len(str(info.value)) < 600
