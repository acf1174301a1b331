"""tf_keras and TFMOT stay optional and lazy (checked in fresh processes)."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

_BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str, blocked=()) -> dict:
    script = f"BLOCKED = {list(blocked)!r}\n" + _BLOCK + textwrap.dedent(code)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1])


def test_imports_are_lazy_the_rest_works_without_tf_keras_and_tfmot_does_not_leak_the_legacy_switch():
    """One fresh process (each costs about 5 s of CPU) in three steps, in this order:

    1. importing tfxfer and every quantize module loads neither tf_keras nor TFMOT;
    2. with both blocked from then on (as if not installed), building, predicting, distilling and
       zipped_size work and the bridge names the install command (step 1 showed that no import
       needs them, so importing under the block would pass too);
    3. unblocked again, loading TFMOT leaves TF_USE_LEGACY_KERAS unset.
    """
    out = _run("""
        import json, os, sys
        import numpy as np, keras
        import tfxfer, tfxfer.quantize, tfxfer.distill, tfxfer.export
        from tfxfer.quantize import bridge, clustering, pruning, qat, selective, sparsity
        loaded = [m for m in ("tf_keras", "tensorflow_model_optimization") if m in sys.modules]

        BLOCKED[:] = ["tf_keras", "tensorflow_model_optimization"]
        from tfxfer.distill import distill
        from tfxfer.errors import MissingDependencyError
        from tfxfer.quantize import to_tf_keras, zipped_size
        model = tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
        x = np.zeros((2, 32, 32, 3), "float32")
        ok = model.predict(x, verbose=0).shape == (2, 2) and zipped_size(b"abc")["plain_bytes"] == 3
        def mlp(n):
            return keras.Sequential([keras.Input((4,)), keras.layers.Dense(n), keras.layers.Dense(2, activation="softmax")])
        distill(mlp(8), mlp(2), (np.ones((8, 4), "float32"), np.arange(8) % 2), epochs=1)
        try:
            to_tf_keras(model)
            message = None
        except MissingDependencyError as exc:
            message = str(exc)
        blocked_loaded = [m for m in BLOCKED if m in sys.modules]

        BLOCKED.clear()
        from tfxfer.quantize import _deps
        _deps.tf_keras.cache_clear()
        _deps.tfmot.cache_clear()
        _deps.tfmot()
        print(json.dumps({"loaded": loaded, "env": os.environ.get("TF_USE_LEGACY_KERAS"),
                          "keras": keras.__version__, "ok": ok, "message": message,
                          "blocked_loaded": blocked_loaded,
                          "tfmot_loaded": "tensorflow_model_optimization" in sys.modules}))
    """)
    assert out["loaded"] == []
    assert out["env"] is None  # child processes (LiteRT benchmark workers...) stay on Keras 3
    assert out["keras"].startswith("3.")
    assert out["ok"] and out["blocked_loaded"] == []
    assert "pip install 'tf-keras==2.21.*'" in out["message"]
    assert out["tfmot_loaded"]  # step 3 really loaded TFMOT


@pytest.mark.parametrize("name, expected", [("tf_keras", "pip install 'tf-keras==2.21.*'"),
                                            ("tfmot", "'tensorflow-model-optimization==0.8.1'")])
def test_missing_dependency_error_in_process(monkeypatch, name, expected):
    import importlib

    from tfxfer.errors import MissingDependencyError
    from tfxfer.quantize import _deps

    real = importlib.import_module

    blocked = {"tf_keras": "tf_keras", "tfmot": "tensorflow_model_optimization"}[name]

    def fake(module, *args, **kwargs):
        if module == blocked:
            raise ImportError(module)
        return real(module, *args, **kwargs)

    getattr(_deps, name).cache_clear()
    monkeypatch.setattr(_deps.importlib, "import_module", fake)
    try:
        with pytest.raises(MissingDependencyError, match=re.escape(expected)):
            getattr(_deps, name)()
    finally:
        monkeypatch.undo()
        getattr(_deps, name).cache_clear()
