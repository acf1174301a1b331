"""`tfxfer run --out DIR` refuses a folder that holds other files and no tfxfer run (a home or project
folder): a run writes, replaces and removes files in its folder. Absent, empty and run folders are fine."""

import json
import os

import pytest

from tfxfer.cli import main
from tfxfer.errors import ArgumentError
from tfxfer.recipes.run_folder import check_run_folder, is_run_folder
from tfxfer.utils.lock import LOCK_NAME, TAKEOVER_NAME
from tests.recipes.helpers import recipe, tiny_overrides


def _project(tmp_path):
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "config.yaml").write_text("not: a run\n")  # a project's own config.yaml is no run marker
    return folder


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("force", [False, True])
def test_cli_refuses_a_folder_with_other_files(image_folder, tmp_path, capsys, force):
    folder = _project(tmp_path)
    before = _listing(folder)
    argv = ["run", recipe("quick"), "--out", str(folder), "-q", *(["--force"] if force else []),
            *[a for s in tiny_overrides(image_folder) for a in ("--set", s)]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfxfer: error: "), err
    assert "`--out` is a folder that holds other files (config.yaml, notes.txt, src)" in err[0]
    assert str(folder) in err[0]
    assert _listing(folder) == before and (folder / "config.yaml").read_text() == "not: a run\n"


def test_library_refuses_it_too(tmp_path):
    from tfxfer.recipes import load_config, run_pipeline

    folder = _project(tmp_path)
    with pytest.raises(ArgumentError, match=r"`--out` is a folder that holds other files .* Received: --out="):
        run_pipeline(load_config(recipe("quick")), out_dir=folder, verbosity=0)
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(ArgumentError, match="`--out` is a file, not a folder"):
        check_run_folder(file)


def test_absent_empty_and_run_folders_are_accepted(tmp_path):
    check_run_folder(tmp_path / "absent")
    check_run_folder(tmp_path)  # empty
    (tmp_path / LOCK_NAME).write_text("{}")  # a run killed before it wrote anything else
    (tmp_path / "workers" / "worker-1").mkdir(parents=True)  # multi-worker: a worker wrote first
    check_run_folder(tmp_path)
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "manifest.json").write_text(json.dumps({"tfxfer_manifest": 1, "status": "ok"}))
    (finished / "model.keras").write_text("x")
    assert is_run_folder(finished)
    check_run_folder(finished)
    early = tmp_path / "early"  # killed after config.yaml, before the manifest
    (early / "stages").mkdir(parents=True)
    (early / "config.yaml").write_text("name: q\n")
    assert is_run_folder(early)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"name": "a web app manifest"}))
    assert not is_run_folder(foreign)
    with pytest.raises(ArgumentError, match=r"holds other files \(manifest.json\)"):
        check_run_folder(foreign)


def test_a_starting_run_is_not_mistaken_for_other_files(tmp_path):
    """A multi-worker worker may look while its chief starts the run in the same folder."""
    (tmp_path / LOCK_NAME).write_text("{}")
    (tmp_path / TAKEOVER_NAME).write_text("")  # left by taking over a killed run's lock
    (tmp_path / ".config.yaml.tmp-123-abcdef01-xyz").mkdir()  # tfxfer.utils.atomic's temporary
    check_run_folder(tmp_path)
    (tmp_path / "config.yaml").write_text("name: q\n")
    (tmp_path / ".manifest.json.tmp-123-abcdef01-xyz").mkdir()
    check_run_folder(tmp_path)


def test_an_absent_folder_that_cannot_be_made_is_refused(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("x")
    for out in (file / "sub", file / "a" / "b"):  # below a file: would fail only once TensorFlow has loaded
        with pytest.raises(ArgumentError, match=rf"`--out` cannot be made: {file} is a file, not a folder"):
            check_run_folder(out)
    check_run_folder(tmp_path / "new" / "deeper")  # below a folder that can be written: fine
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ArgumentError, match=rf"cannot be made: tfxfer cannot write into {locked}"):
            check_run_folder(locked / "run")


@pytest.mark.parametrize("out", ["", "  "])
def test_cli_refuses_a_blank_out(tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)  # `--out "$OUT"` with OUT unset must not run into runs/<name> here
    assert main(["run", recipe("quick"), "--out", out, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfxfer: error: `--out` must name a folder. Received: --out="), err
    assert not (tmp_path / "runs").exists()
