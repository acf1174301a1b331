"""Every docstring example in tfxfer runs as written.

One parametrized test per module that has an example (``>>>``), found by walking the package, so a
new module is covered without a list to keep. Examples that need downloads or real weights carry
``# doctest: +SKIP``; every module keeps at least one runnable example (`ONLY_SKIPPED` lists the
exceptions). Each module runs in a fresh working folder, so an example that writes a relative path
leaves nothing in the checkout. The device scripts in ``export/`` (not a package) are loaded from their files.
Examples marked ``+SKIP`` cannot run here; their calls and attributes are checked against the API
statically instead (`tests.api_calls`).
"""

import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from importlib import metadata
from pathlib import Path

import pytest

import tfxfer
from tests.api_calls import check_attributes, check_block

ROOT = Path(tfxfer.__file__).parent
DEVICE_SCRIPTS = ROOT.parent / "export"  # the TensorFlow-free files a device runs (not a package)


def _modules_with_examples():
    names = ["tfxfer"]
    names += [info.name for info in pkgutil.walk_packages([str(ROOT)], prefix="tfxfer.")]
    found = []
    for name in sorted(names):
        relative = name.split(".")[1:]
        path = ROOT.joinpath(*relative)
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if source.is_file() and ">>>" in source.read_text(encoding="utf-8"):
            found.append(name)
    return found


MODULES = _modules_with_examples()
NEEDS_DISTRIBUTION = {"tfxfer.data.registry": "animal-mnist"}  # its example loads the packaged set
ONLY_SKIPPED = {"tfxfer.recipes.causal_lm_stages"}  # every example runs the SmolLM2 recipe: checked statically below
# the gate's examples are its documentation of the statistics (agreement interval, examples needed, delivery)
MIN_EXAMPLES = {"tfxfer.export.gate": 5, "tfxfer.export.delivery": 5, "tfxfer.export.gate_statistics": 5}


def test_the_walk_finds_the_modules_with_examples():
    assert len(MODULES) > 200
    assert {"tfxfer", "tfxfer.models", "tfxfer.train.fine_tune", "tfxfer.reliability.shuffle"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    distribution = NEEDS_DISTRIBUTION.get(name)
    if distribution:
        try:
            metadata.distribution(distribution)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{name}'s example needs the {distribution} package")
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert not result.failed, f"failing examples: pytest --doctest-modules {name.replace('.', '/')}.py"
    if name not in ONLY_SKIPPED:
        assert result.attempted >= MIN_EXAMPLES.get(name, 1), f"{name} has no runnable example (all +SKIP?)"


@pytest.mark.parametrize("path", sorted(p.name for p in DEVICE_SCRIPTS.glob("*.py") if ">>>" in p.read_text(encoding="utf-8")))
def test_device_script_examples_run(path, monkeypatch):
    monkeypatch.syspath_prepend(str(DEVICE_SCRIPTS))  # they import each other by file name
    spec = importlib.util.spec_from_file_location(f"device_{Path(path).stem}", DEVICE_SCRIPTS / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted and not result.failed


def _docstrings_with_skipped_examples():
    found = []
    for name in MODULES:
        for test in doctest.DocTestFinder().find(importlib.import_module(name)):
            if any(example.options.get(doctest.SKIP) for example in test.examples):
                found.append((test.name, "\n".join(example.source for example in test.examples)))
    return found


def test_skipped_examples_call_the_api_as_it_is():
    checked, problems = 0, []
    for where, code in _docstrings_with_skipped_examples():
        for count, found in (check_block(code), check_attributes(code)):
            checked += count
            problems += [f"{where}: {problem}" for problem in found]
    assert checked >= 50
    assert problems == []


def test_every_public_function_and_class_has_an_example():
    """What each package face exports (``__all__`` or its lazy ``_EXPORTS``) shows an example in its own
    docstring or in its module's."""
    faces = ["tfxfer"] + [info.name for info in pkgutil.iter_modules(tfxfer.__path__, "tfxfer.") if info.ispkg]
    public, missing = 0, []
    for face in faces:
        module = importlib.import_module(face)
        for name in getattr(module, "__all__", None) or list(getattr(module, "_EXPORTS", {})):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            public += 1
            home = sys.modules.get(obj.__module__)
            if ">>>" not in (inspect.getdoc(obj) or "") and ">>>" not in (getattr(home, "__doc__", None) or ""):
                missing.append(f"{face}.{name}")
    assert public > 300
    assert missing == []
