"""Replacing a folder atomically (a SavedModel, a model directory): a reader polling the path never finds
it missing, where the system can swap two paths in one step; elsewhere two renames still replace it."""

import os
import threading

import pytest

from tfxfer.utils import atomic
from tfxfer.utils.atomic import atomic_path


def _write(path, value):
    with atomic_path(path, directory=True) as tmp:
        with open(os.path.join(tmp, "v"), "w") as f:
            f.write(str(value))


def _can_exchange(tmp_path) -> bool:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    return atomic._exchange(str(a), str(b))


def test_a_reader_never_sees_the_folder_missing_while_it_is_replaced(tmp_path):
    if not _can_exchange(tmp_path):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the two-rename fallback is tested below")
    path = str(tmp_path / "model")
    _write(path, 0)
    stop, misses = threading.Event(), []

    def reader():
        while not stop.is_set():
            if not os.path.isdir(path):
                misses.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 150):
            _write(path, i)
    finally:
        stop.set()
        thread.join()
    assert not misses  # the two-rename replacement left the path missing hundreds of times in such a loop
    with open(os.path.join(path, "v")) as f:
        assert f.read() == "149"
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "model"]  # no backup or temporary left


def test_without_an_atomic_exchange_two_renames_still_replace_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    path = str(tmp_path / "model")
    _write(path, 1)
    _write(path, 2)
    with open(os.path.join(path, "v")) as f:
        assert f.read() == "2"
    assert os.listdir(tmp_path) == ["model"]
