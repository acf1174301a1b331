"""A recipe process killed with SIGKILL after its fine-tuning stage resumes with ``--resume`` without
redoing fine-tuning (the model file is reused untouched) and finishes with a gated TFLite file."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.recipes.helpers import recipe, tiny_overrides

FLOAT32 = ["export.variants=[float32]", "export.deliver=float32", "export.benchmark=false"]

# Runs the real CLI in a child process whose export stage blocks, so the kill lands after fine-tuning
# deterministically (a tiny export would otherwise race the kill).
CHILD = """
import sys, time
from tfxfer.recipes import export_stages
def blocked(ctx):
    time.sleep(600)
export_stages.run_export = blocked
from tfxfer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_after_finetune_then_resume(image_folder, tmp_path):
    from tfxfer import cli

    out = str(tmp_path / "run")
    argv = ["run", recipe("quick"), "--out", out, "-q", "--allow-chance"] + [  # random weights: may be at chance
        # the float32 file is gated and delivered alone: the resumed export stage is the point, not int8
        a for s in tiny_overrides(image_folder, extra=FLOAT32) for a in ("--set", s)]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, str(script), *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    record = os.path.join(out, "stages", "finetune.json")
    deadline = time.monotonic() + 300
    def finetune_done():
        if not os.path.isfile(record):
            return False
        with open(record) as f:  # written atomically: "running" at the start, "done" at the end
            return json.load(f)["status"] == "done"

    try:
        while not finetune_done():
            assert child.poll() is None, f"the run ended before fine-tuning finished: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "fine-tuning did not finish in 300 s"
            time.sleep(0.1)
        time.sleep(1.0)  # inside the blocked export stage by now
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    model = os.path.join(out, "model", "model.keras")
    mtime = os.path.getmtime(model)
    with open(record) as f:
        fingerprint = json.load(f)["fingerprint"]

    assert cli.main(argv + ["--resume"]) == 0
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["status"] == "ok" and manifest["gate"]["passed"] is True
    assert manifest["stages"]["finetune"]["status"] == "skipped"  # not redone
    assert manifest["stages"]["export"]["status"] == "done"
    assert os.path.getmtime(model) == mtime
    with open(record) as f:
        assert json.load(f)["fingerprint"] == fingerprint
    assert os.path.isfile(os.path.join(out, manifest["gate"]["deliver"]))
