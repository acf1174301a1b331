"""The files the export and verify stages own in ``export/``, and removing the ones an earlier run of
the stage wrote that this run did not.

A recipe re-run with fewer ``export.variants`` (``[float32, int8]``, then ``[float32]``), or whose
verify stage no longer makes a remedy file (``int8_selective``, ``weight_only``), must not leave the
earlier files beside the new ones: a user, a script or a device would pick up a .tflite that no
longer matches the model. Each stage removes, once its new files are written, the files its last
finished run listed (`tfxfer.recipes.runner.previous_outputs`: carried through runs that did not
finish) and that it did not write this time, with their companions named after the same stem (the
sidecar ``<stem>.json`` and the tokenizer files of a text export). Nothing else is touched: only
paths inside the run's ``export/`` folder, never a file a user put there under another name.

Example:
    >>> sorted(export_stage_files({"exports": {"int8": {"path": "export/m_int8.tflite",
    ...                                                 "sidecar": "export/m_int8.json"}}}))[:2]
    ['export/m_int8.json', 'export/m_int8.merges.txt']
"""

from __future__ import annotations

import os
import posixpath

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


def _previous(ctx, stage: str, files_of) -> set[str]:
    previous = previous_outputs(ctx, stage)
    if not isinstance(previous, dict):
        return set()
    artefacts = previous.get("artefacts")
    return files_of(previous.get("outputs"), artefacts if isinstance(artefacts, list) else [])


def remove_stale(ctx, stage: str, *, keep) -> list[str]:
    """Remove the files stage ``stage`` (``"export"`` or ``"verify"``) wrote in its last finished run
    that are not in ``keep`` (relative paths this run wrote or uses); returns the removed paths."""
    files_of = export_stage_files if stage == "export" else verify_stage_files
    keep = {posixpath.normpath(k) for k in keep if isinstance(k, str)}
    root = os.path.realpath(ctx.abs(EXPORT_DIR))
    removed = []
    for rel in sorted(_previous(ctx, stage, files_of) - keep):
        path = ctx.abs(rel)
        parent = os.path.realpath(os.path.dirname(path))
        if not (parent == root or parent.startswith(root + os.sep)):
            continue  # a link out of export/: not ours to follow
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
            removed.append(rel)
    if removed:
        ctx.console.detail(f"{stage}: removed {len(removed)} file(s) of an earlier run: {', '.join(removed)}")
    return removed


__all__ = ["export_stage_files", "remove_stale", "verify_stage_files", "with_companions"]
