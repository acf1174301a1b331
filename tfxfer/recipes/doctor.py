"""``tfxfer doctor``: do the installed TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit
together, and what exactly to run if they do not.

The rules are the ones tfxfer depends on: Keras 3 on the TensorFlow backend; tf_keras with the same
major.minor as TensorFlow (TFMOT runs on it); TFMOT 0.8 (the release that works with tf_keras 2.x);
the LiteRT interpreter for verification and benchmarks; keras-hub for text encoders.

Example:
    >>> checks = check_versions({"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.20.1",
    ...                          "tensorflow-model-optimization": "0.8.1", "ai-edge-litert": "2.3.0",
    ...                          "keras-hub": "0.32.0", "tensorflow-serving-api": "2.21.0"}, env={})
    >>> [(c.name, c.fix) for c in checks if not c.ok]
    [('tf-keras', 'pip install "tf-keras==2.21.*"')]
"""

from __future__ import annotations

import dataclasses
import os
import sys

from tfxfer.recipes.manifest import package_versions

#: The TF_USE_LEGACY_KERAS values that make TensorFlow route tf.keras to tf_keras (Keras 2); any other
#: value, "FALSE" or "no" included, leaves Keras 3 (tensorflow/python/util/lazy_loader.py).
LEGACY_KERAS_ON = ("true", "True", "1")
PACKAGES = ("tensorflow", "keras", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "keras-hub",
            "tensorflow-serving-api")


@dataclasses.dataclass
class Check:
    """One line of the doctor's report; ``level`` is "error" (must fix) or "warning"."""

    name: str
    ok: bool
    found: str
    expected: str
    fix: str = ""
    level: str = "error"


def _parse(version: str | None):
    if not version:
        return None
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def installed_versions(names=PACKAGES) -> dict:
    """``{distribution: version or None}`` of the packages the doctor checks."""
    return package_versions(names)


def check_versions(versions: dict, *, env=None) -> list[Check]:
    """Checks from installed versions and environment variables alone (imports nothing)."""
    env = os.environ if env is None else env
    checks = []
    tf = _parse(versions.get("tensorflow"))
    mm = f"{tf[0]}.{tf[1]}" if tf else "2.21"

    def add(name, ok, expected, fix, level="error"):
        checks.append(Check(name, bool(ok), versions.get(name) or "missing", expected, "" if ok else fix, level))

    add("tensorflow", tf and tf >= (2, 16, 0), ">= 2.16 (tfxfer is tested on 2.21)", 'pip install "tensorflow==2.21.*"')
    keras = _parse(versions.get("keras"))
    add("keras", keras and keras[0] == 3 and keras >= (3, 13, 0), ">= 3.13, < 4 (Keras 3)", 'pip install "keras>=3.13,<4"')
    tfk = _parse(versions.get("tf-keras"))
    add("tf-keras", tfk and tf and tfk[:2] == tf[:2], f"{mm}.* (same major.minor as TensorFlow)",
        f'pip install "tf-keras=={mm}.*"')
    tfmot = _parse(versions.get("tensorflow-model-optimization"))
    add("tensorflow-model-optimization", tfmot and tfmot[:2] == (0, 8), "0.8.x (runs on tf_keras)",
        'pip install "tensorflow-model-optimization==0.8.1"')
    litert = _parse(versions.get("ai-edge-litert"))
    add("ai-edge-litert", litert and litert >= (2, 3, 0), ">= 2.3 (LiteRT interpreter)", 'pip install "ai-edge-litert>=2.3"')
    hub = _parse(versions.get("keras-hub"))
    add("keras-hub", hub and hub >= (0, 32, 0), ">= 0.32 (text encoders)", 'pip install "keras-hub>=0.32"')
    serving = _parse(versions.get("tensorflow-serving-api"))
    add("tensorflow-serving-api", serving and tf and serving[:2] == tf[:2], f"{mm}.* (SavedModel warm-up files)",
        f'pip install "tensorflow-serving-api=={mm}.*"', level="warning")
    backend = env.get("KERAS_BACKEND")
    checks.append(Check("KERAS_BACKEND", backend in (None, "", "tensorflow"), backend or "unset (tensorflow)",
                        "tensorflow", "" if backend in (None, "", "tensorflow") else "unset KERAS_BACKEND"))
    legacy = env.get("TF_USE_LEGACY_KERAS")
    ok = legacy not in LEGACY_KERAS_ON  # TensorFlow's own test: FALSE, no, off leave tf.keras on Keras 3
    checks.append(Check("TF_USE_LEGACY_KERAS", ok, legacy or "unset", "not true/True/1 (tfxfer uses Keras 3)",
                        "" if ok else "unset TF_USE_LEGACY_KERAS"))
    return checks


def _import_check(name, statement, fix) -> Check:
    try:
        exec(statement, {})  # noqa: S102 - fixed import statements below, no user input
        return Check(name, True, "imports", "imports")
    except Exception as exc:  # noqa: BLE001 - any import failure is what the doctor reports
        return Check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}",
                     "imports", fix)


def version_checks() -> list[Check]:
    """The Python version plus `check_versions` of the installed packages: reads package metadata
    only, imports nothing (what ``tfxfer doctor`` prints first, and all of ``--versions-only``)."""
    checks = [Check("python", sys.version_info >= (3, 10), sys.version.split()[0], ">= 3.10",
                    "use Python 3.10 or newer")]
    return checks + check_versions(installed_versions())


def import_checks() -> list[Check]:
    """Real imports: TensorFlow with the Keras backend, LiteRT, TFMOT, keras-hub (seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    checks = []
    backend = os.environ.get("KERAS_BACKEND")
    if backend not in (None, "", "tensorflow"):  # importing would load (or fail to find) that backend instead
        checks.append(Check("import keras (TensorFlow backend)", False, f"KERAS_BACKEND={backend}", "imports",
                            "unset KERAS_BACKEND (or set it to tensorflow): tfxfer needs the tensorflow backend"))
    else:
        checks.append(_import_check("import keras (TensorFlow backend)",
                                    "import keras\nbackend = keras.backend.backend()\n"
                                    "assert backend == 'tensorflow', f'backend {backend} (~/.keras/keras.json)'",
                                    "set \"backend\": \"tensorflow\" in ~/.keras/keras.json; "
                                    "pip install \"keras>=3.13,<4\""))
    checks.append(_import_check("import ai_edge_litert", "from ai_edge_litert.interpreter import Interpreter",
                                'pip install "ai-edge-litert>=2.3"'))
    checks.append(_import_check("import tensorflow_model_optimization",
                                "import tensorflow_model_optimization as tfmot\ntfmot.quantization.keras.quantize_model",
                                'pip install "tensorflow-model-optimization==0.8.1" "tf-keras==<TF major.minor>.*"'))
    checks.append(_import_check("import keras_hub", "import keras_hub", 'pip install "keras-hub>=0.32"'))
    return checks


def check_environment() -> list[Check]:
    """`version_checks` plus `import_checks`."""
    return version_checks() + import_checks()


def all_pass(checks) -> bool:
    """True when every check passed or failed only as a warning (what ``tfxfer doctor`` exits 0 on).

    Example:
        >>> all_pass([Check("keras-hub", False, "missing", ">= 0.32", level="warning")])
        True
    """
    return all(c.ok or c.level == "warning" for c in checks)


def format_rows(checks, *, header: bool = True) -> str:
    """The doctor's table rows (with the header line unless ``header=False``)."""
    lines = [f"{'check':<38} {'found':<24} {'expected':<40} status"] if header else []
    for c in checks:
        status = "ok" if c.ok else ("WARN" if c.level == "warning" else "FIX")
        lines.append(f"{c.name:<38} {c.found[:24]:<24} {c.expected[:40]:<40} {status}")
    return "\n".join(lines)


def format_fixes(checks) -> str:
    """The "what to fix" list, or "Everything fits together."."""
    fixes = [c for c in checks if not c.ok]
    if fixes:
        return "\n".join(["What to fix:"] + [f"  {c.name}: {c.fix}" for c in fixes])
    return "Everything fits together."


def format_checks(checks) -> str:
    """The doctor's table plus a "what to fix" list."""
    return format_rows(checks) + "\n\n" + format_fixes(checks)
