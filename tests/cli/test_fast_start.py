"""Commands that need no model answer without importing TensorFlow or Keras: `--help`, `datasets`,
`backbones`, `doctor --versions-only`, and every argument, path and name error (they fail in a
fraction of a second instead of after TensorFlow's ~10 s import).

One subprocess blocks ``tensorflow`` and ``keras`` (an import raises) and runs them all."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = os.path.join(ROOT, "pipelines", "quick.yaml")

_SCRIPT = r'''
import contextlib, importlib.abc, io, json, sys

class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_hub", "keras_hub"):
            raise ImportError(f"{name} imported by a command that must not need it")

sys.meta_path.insert(0, _Blocked())
from tfxfer.cli import main

out = []
for argv in json.loads(sys.argv[1]):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    out.append({"argv": argv, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()})
print(json.dumps(out))
'''


def _run_blocked(cases, tmp_path):
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(cases)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return {tuple(r["argv"]): r for r in json.loads(proc.stdout)}


def test_no_tensorflow_for_listings_help_and_errors(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not really a model")
    bad_recipe = tmp_path / "typo.yaml"
    bad_recipe.write_text("data: {source: animal_mnist}\ntrain: {epochz: 2}\n")
    cases = [
        ["--help"], ["datasets"], ["datasets", "--json"], ["datasets", "describe", "elpv"], ["backbones"],
        ["backbones", "--family", "efficientnet_lite", "--json"], ["doctor", "--versions-only"],
        ["run", "--help"],
        # errors: each exits 2 before any heavy import
        ["rnu", QUICK], ["run", "--epohcs", "2", QUICK], ["run", str(bad_recipe)],
        ["run", QUICK, "--set", "model.backbone=efficientnet_lite9"],
        ["run", QUICK, "--set", "data.source=animal_mnst"],
        ["run", QUICK, "--set", f"data.source={tmp_path / 'missing'}"],
        ["predict", str(tmp_path / "nope.keras"), "x.png"],
        ["predict", str(tmp_path / "model.tflite"), "x.png"],
        ["evaluate", str(tmp_path / "model.keras"), "imagenet_full"],
        ["evaluate", str(tmp_path / "model.keras"), "animal_mnst"],
        ["evaluate", str(tmp_path / "model.keras"), str(tmp_path / "missing_folder")],
        ["export", str(tmp_path / "model.keras"), "fashion_mnsit", "--json"],
        ["rank", "elvp", "--candidates", "mobilenet_v2"], ["rank", str(tmp_path), "--set", "x=1"],
        ["rank", QUICK, "--set", "data.source=animal_mnst"], ["rank", QUICK, "--set", "model.backbone=resnet5"],
        ["rank", QUICK, "--max-samples", "-1"], ["rank", QUICK, "--max-size-mib", "nan"],
        ["rank", QUICK, "--max-latency-ms", "0"], ["rank", QUICK, "--max-params", "0"],
        ["rank", QUICK, "--sequence-length", "1"], ["rank", QUICK, "--max-samples", "2", "--probe"],
        ["datasets", "describe", "elvp"], ["backbones", "--family", "mobilenet_v9"],
    ]
    results = _run_blocked(cases, tmp_path)
    for argv in cases[:8]:
        r = results[tuple(argv)]
        assert r["code"] == 0 and r["stdout"] and "imported by a command" not in r["stderr"], r
    for argv in cases[8:]:
        r = results[tuple(argv)]
        assert r["code"] == 2, r
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tfxfer: error: "), r
    err = {tuple(k): v["stderr"].strip() for k, v in results.items()}
    assert "did you mean 'run'?" in err[("rnu", QUICK)]
    assert "unknown flag --epohcs for `tfxfer run`; did you mean --set train.epochs=2?" in err[
        ("run", "--epohcs", "2", QUICK)]
    assert "Did you mean `train.epochs`?" in err[("run", str(bad_recipe))]
    assert "`model.backbone`: Unknown backbone 'efficientnet_lite9'. Did you mean" in err[
        ("run", QUICK, "--set", "model.backbone=efficientnet_lite9")]
    assert "Did you mean 'animal_mnist'?" in err[("run", QUICK, "--set", "data.source=animal_mnst")]
    assert "must be an existing .keras or .tflite file" in err[("predict", str(tmp_path / "nope.keras"), "x.png")]
    assert "Did you mean: 'animal_mnist'" in err[("evaluate", str(tmp_path / "model.keras"), "animal_mnst")]
    assert "must be an existing folder or table file" in err[
        ("evaluate", str(tmp_path / "model.keras"), str(tmp_path / "missing_folder"))]
    assert "Did you mean: 'elpv'?" in err[("rank", "elvp", "--candidates", "mobilenet_v2")]
    assert ("`data` must be a packaged data set name, a folder or a CSV table. Received: data='imagenet_full'. "
            "Packaged data sets: elpv, animal_mnist") in err[("evaluate", str(tmp_path / "model.keras"), "imagenet_full")]
    assert "Did you mean 'animal_mnist'?" in err[("rank", QUICK, "--set", "data.source=animal_mnst")]
    assert "`model.backbone`: Unknown backbone 'resnet5'. Did you mean: 'resnet50'" in err[
        ("rank", QUICK, "--set", "model.backbone=resnet5")]
    for flag, value, need in (("--max-samples", "-1", "an int >= 2"), ("--max-size-mib", "nan", "a finite number > 0"),
                              ("--max-latency-ms", "0", "a finite number > 0"), ("--max-params", "0", "an int >= 1"),
                              ("--sequence-length", "1", "an int >= 2")):  # the flag's name, not the library's
        assert f"`{flag}` must be {need}. Received: {flag}=" in err[("rank", QUICK, flag, value)]
    assert "`--max-samples` must be an int >= 3" in err[("rank", QUICK, "--max-samples", "2", "--probe")]
    doc = json.loads(results[("export", str(tmp_path / "model.keras"), "fashion_mnsit", "--json")]["stdout"])
    assert doc["error"]["type"] == "UnknownNameError" and "'fashion_mnist'" in doc["error"]["message"]
    listing = json.loads(results[("backbones", "--family", "efficientnet_lite", "--json")]["stdout"])
    assert [b["name"] for b in listing["backbones"]] == ["efficientnet_lite0", "efficientnet_lite1",
                                                         "efficientnet_lite2"]
