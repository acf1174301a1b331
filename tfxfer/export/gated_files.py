"""Write a file that must pass its gate in a staging folder, and move it to its path only once gated.

`tfxfer.quantize.train_qat`, `tfxfer.quantize.selective_int8` and
`tfxfer.quantize.compressed_export.export_compressed` write their .tflite file and sidecar into a
staging folder beside the final path (`staged`), gate it there, write the verdict into the sidecar
(`record_verdict`, as `tfxfer.export.export_all` does) and then `settle` it: a file that passed is moved
to its path; a failed one is not written at all (`GateError`), or with ``raise_on_failure=False``
moved in with its sidecar saying ``"passed": false``, so ``export/litert_runner.py`` refuses it. An
interrupted or failed run leaves what was at the final path as it was.

Example:
    >>> import os, tempfile
    >>> final = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> with staged(final) as folder:
    ...     os.path.dirname(folder) == os.path.dirname(final)
    True
    >>> os.listdir(os.path.dirname(final))
    []
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil

from tfxfer.errors import GateError


@contextlib.contextmanager
def staged(final: str):
    """A new staging folder beside ``final`` (`tfxfer.export.staging.make_staging`: one a killed run left
    is removed by the next), removed with whatever is still in it on exit."""
    from tfxfer.export.staging import make_staging, remove_stale_staging

    directory = os.path.dirname(os.path.abspath(final))
    os.makedirs(directory, exist_ok=True)
    remove_stale_staging(directory)
    staging = make_staging(directory, os.path.basename(final))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def record_verdict(export, gate) -> None:
    """Write ``gate``'s verdict into ``export``'s sidecar (`tfxfer.export.table.write_verdicts`)."""
    from tfxfer.export.table import write_verdicts

    if export.sidecar_path:
        write_verdicts({variant: export.sidecar_path for variant in gate.results}, gate.results)


def move_in(export, gate, final: str):
    """Move the gated file (then its sidecar) to ``final``; returns ``export`` and ``gate`` with the
    paths they now have."""
    from tfxfer.export.metadata import sidecar_path

    moved = {export.path: final}
    if export.sidecar_path:
        moved[export.sidecar_path] = sidecar_path(final)
    for old, new in moved.items():
        os.replace(old, new)

    def relocate(item):
        names = {f.name for f in dataclasses.fields(item)}
        return dataclasses.replace(item, **{k: moved.get(getattr(item, k), getattr(item, k))
                                            for k in ("path", "sidecar_path") if k in names})

    return relocate(export), dataclasses.replace(gate, results={k: relocate(r) for k, r in gate.results.items()})


def settle(export, gate, final: str, *, raise_on_failure: bool, what: str | None = None):
    """Record ``gate`` in ``export``'s sidecar, then move the file to ``final`` (`move_in`) if it passed
    or ``raise_on_failure`` is False; else raise `GateError` (``what`` begins its message) and write nothing."""
    record_verdict(export, gate)
    if not gate.passed and raise_on_failure:
        what = what or f"Verification gate failed for {gate.failed}"
        raise GateError(f"{what}; {final} was not written (pass raise_on_failure=False to "
                        f"keep it, marked failed in its sidecar):\n{gate.format()}", report=gate)
    return move_in(export, gate, final)
