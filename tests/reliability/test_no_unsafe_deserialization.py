"""No pickle of user data anywhere in tfxfer, and no other code-running deserializer.

An AST scan of the package: ``pickle`` is imported only by the two restricted readers (legacy
``.pth`` weights, Animal-MNIST arrays), whose Unpickler subclasses override ``find_class``; nothing
pickles (``dump``/``dumps``); no joblib/dill/shelve/marshal; ``numpy.load`` never allows pickles;
YAML only through safe loaders; Keras loading never hard-codes ``safe_mode=False``.
"""

from __future__ import annotations

import ast
import os

from tests.reliability.conftest import ROOT

PACKAGE = os.path.join(ROOT, "tfxfer")
RESTRICTED_UNPICKLERS = {"backbones/pth_reader.py", "data/datasets.py"}
FIXED_EXEC = {"recipes/doctor.py"}  # exec of fixed import statements, no user input


def _modules():
    for dirpath, _, filenames in os.walk(PACKAGE):
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, PACKAGE).replace(os.sep, "/"), ast.parse(f.read(), path)


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def test_the_package_never_unpickles_or_executes_user_data():
    problems = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                for name in filter(None, names):
                    root = name.split(".")[0]
                    if root in ("joblib", "dill", "shelve", "marshal", "cloudpickle"):
                        problems.append(f"{rel}: imports {name}")
                    if root == "pickle" and rel not in RESTRICTED_UNPICKLERS:
                        problems.append(f"{rel}: imports pickle")
            if isinstance(node, ast.ClassDef) and any(_dotted(b) == "pickle.Unpickler" for b in node.bases):
                if not any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body):
                    problems.append(f"{rel}: Unpickler subclass {node.name} without find_class")
            if not isinstance(node, ast.Call):
                continue
            func = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if func in ("pickle.dump", "pickle.dumps", "pickle.load", "pickle.loads", "pickle.Unpickler"):
                problems.append(f"{rel}:{node.lineno}: {func}")
            if func.endswith(("np.load", "numpy.load", "np.save", "np.savez")) and isinstance(
                    keywords.get("allow_pickle"), ast.Constant) and keywords["allow_pickle"].value is True:
                problems.append(f"{rel}:{node.lineno}: {func}(allow_pickle=True)")
            if func in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                problems.append(f"{rel}:{node.lineno}: {func}")
            if func == "yaml.load":
                loader = _dotted(keywords.get("Loader", ast.Constant(None)))
                if loader in ("", "yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader"):
                    problems.append(f"{rel}:{node.lineno}: yaml.load with Loader={loader or 'default'}")
            if "load_model" in func and isinstance(keywords.get("safe_mode"), ast.Constant) \
                    and keywords["safe_mode"].value is False:
                problems.append(f"{rel}:{node.lineno}: {func}(safe_mode=False)")
            if func in ("eval", "exec") and rel not in FIXED_EXEC:
                problems.append(f"{rel}:{node.lineno}: {func}()")
    assert not problems, "\n".join(problems)


def test_the_scan_can_fail(tmp_path, monkeypatch):
    bad = tmp_path / "tfxfer"
    bad.mkdir()
    (bad / "oops.py").write_text("import pickle\nimport yaml\npickle.loads(b'')\nyaml.load('a')\n"
                                 "import numpy as np\nnp.load('x', allow_pickle=True)\n")
    monkeypatch.setitem(globals(), "PACKAGE", str(bad))
    try:
        test_the_package_never_unpickles_or_executes_user_data()
    except AssertionError as exc:
        text = str(exc)
        assert "imports pickle" in text and "pickle.loads" in text and "allow_pickle=True" in text
        assert "yaml.load with Loader=default" in text
    else:
        raise AssertionError("the scan did not flag an unsafe module")
