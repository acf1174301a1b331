"""The files the export and verify stages own in ``export/``, and removing the ones an earlier run of
the stage wrote that this run did not.

A recipe re-run with fewer ``export.variants`` (``[float32, int8]``, then ``[float32]``), or whose
verify stage no longer makes a remedy file (``int8_selective``, ``weight_only``), must not leave the
earlier files beside the new ones: a user, a script or a device would pick up a .tflite that no
longer matches the model. Each stage removes, once its new files are written, the files its last
finished run listed (`tfxfer.recipes.runner.previous_outputs`: carried through runs that did not
finish) and that it did not write this time, with their companions named after the same stem (the
sidecar ``<stem>.json`` and the tokenizer files of a text export). A stage also owns the folders its
outputs list under ``"folders"`` (a SavedModel it writes whole: ``export/serving/`` of the image and
text verify stage, ``export/saved_model/`` of the causal-LM one); one it no longer writes is removed
whole, and the files it listed inside a folder this run wrote again are left to that folder. Nothing
else is touched: only paths inside the run's ``export/`` folder, never a file or folder a user put
there under another name, never through a link.

Example:
    >>> sorted(export_stage_files({"exports": {"int8": {"path": "export/m_int8.tflite",
    ...                                                 "sidecar": "export/m_int8.json"}}}))[:2]
    ['export/m_int8.json', 'export/m_int8.merges.txt']
"""

from __future__ import annotations

import os
import posixpath
import shutil

from tfxfer.recipes.runner import previous_outputs

EXPORT_DIR = "export"


def _clean(rel) -> str | None:
    """``rel`` normalised (forward slashes) when it names a file inside ``export/``, else None."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\\" in rel:
        return None
    rel = posixpath.normpath(rel)
    return rel if rel.startswith(EXPORT_DIR + "/") and ".." not in rel.split("/") else None


def with_companions(paths) -> set[str]:
    """``paths`` (relative, inside ``export/``) and, for each ``.tflite``, its sidecar and tokenizer files."""
    from tfxfer.export.text_tflite import tokenizer_file_names

    out = set()
    for rel in filter(None, map(_clean, paths)):
        out.add(rel)
        stem, ext = posixpath.splitext(rel)
        if ext == ".tflite":
            out.add(stem + ".json")
            folder = posixpath.dirname(rel)
            out.update(posixpath.join(folder, name) for name in tokenizer_file_names(posixpath.basename(stem)))
    return out


def export_stage_files(outputs: dict | None, artefacts=()) -> set[str]:
    """The files an export stage with ``outputs`` (and ``artefacts``) wrote: every variant's file, its
    sidecar and tokenizer files."""
    exports = (outputs or {}).get("exports") if isinstance(outputs, dict) else None
    paths = list(artefacts or [])
    if isinstance(exports, dict):
        for entry in exports.values():
            if isinstance(entry, dict):
                paths += [entry.get(key) for key in ("path", "sidecar", "vocab")]
    return with_companions(paths)


def verify_stage_files(outputs: dict | None, artefacts=()) -> set[str]:
    """The files a verify stage wrote into ``export/`` besides its tables: its remedy files (the
    ``.tflite`` among its artefacts; the others are the tables and the sidecars it updated)."""
    return with_companions(rel for rel in artefacts or [] if isinstance(rel, str) and rel.endswith(".tflite"))


def listed_files(outputs: dict | None, artefacts=()) -> set[str]:
    """Every file a stage that owns all its artefacts listed (the causal-LM verify stage: the decoder,
    its sidecar and tokenizer, the SavedModel's files), with the companions of each ``.tflite``."""
    return with_companions(artefacts or [])


def stage_folders(outputs: dict | None) -> set[str]:
    """The folders inside ``export/`` that a stage's ``outputs`` list as its own (``"folders"``).

    Example:
        >>> sorted(stage_folders({"folders": ["export/serving", "export", "../x", "export/../x"]}))
        ['export/serving']
    """
    folders = outputs.get("folders") if isinstance(outputs, dict) else None
    return set(filter(None, map(_clean, folders if isinstance(folders, list) else [])))


def _previous(ctx, stage: str, files_of) -> tuple[set[str], set[str]]:
    previous = previous_outputs(ctx, stage)
    if not isinstance(previous, dict):
        return set(), set()
    artefacts = previous.get("artefacts")
    outputs = previous.get("outputs")
    return files_of(outputs, artefacts if isinstance(artefacts, list) else []), stage_folders(outputs)


def _inside(path: str, root: str) -> bool:
    parent = os.path.realpath(os.path.dirname(path))
    return parent == root or parent.startswith(root + os.sep)


def remove_stale(ctx, stage: str, *, keep, files_of=None) -> list[str]:
    """Remove the files and folders stage ``stage`` wrote in its last finished run that are not in ``keep``
    (relative paths this run wrote or uses: files and its own folders); returns the removed paths.

    ``files_of(outputs, artefacts)`` gives the files a record lists (default: `export_stage_files` for
    ``"export"``, `verify_stage_files` for ``"verify"``); the folders are the record's `stage_folders`.
    """
    files_of = files_of or (export_stage_files if stage == "export" else verify_stage_files)
    keep = {posixpath.normpath(k) for k in keep if isinstance(k, str)}
    root = os.path.realpath(ctx.abs(EXPORT_DIR))
    old_files, old_folders = _previous(ctx, stage, files_of)
    removed = []
    for rel in sorted(old_folders - keep):
        path = ctx.abs(rel)
        if not _inside(path, root):
            continue  # a link out of export/: not ours to follow
        if os.path.islink(path):
            os.remove(path)  # the link only, never what it points to
        elif os.path.isdir(path):
            shutil.rmtree(path)
        else:
            continue
        removed.append(rel)
    written_again = [k + "/" for k in keep]  # a folder this run wrote: what it holds is this run's
    for rel in sorted(old_files - keep):
        path = ctx.abs(rel)
        if any(rel.startswith(folder) for folder in written_again) or not _inside(path, root):
            continue  # inside a folder this run wrote whole again, or a link out of export/
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
            removed.append(rel)
    if removed:
        ctx.console.detail(f"{stage}: removed {len(removed)} file(s) or folder(s) of an earlier run: "
                           f"{', '.join(removed)}")
    return removed


__all__ = ["export_stage_files", "listed_files", "remove_stale", "stage_folders", "verify_stage_files",
           "with_companions"]
