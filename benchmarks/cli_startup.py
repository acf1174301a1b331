"""How fast the commands that need no model answer: ``tfxfer --help``, ``tfxfer datasets`` and
``tfxfer backbones`` against ``python -c "import numpy"`` (the yardstick: the cheapest useful Python
program), each a whole fresh process timed from outside, in the same run.

The commands alternate (one of each per round, in a rotating order) so load drift on a shared
machine hits them alike; each round's ratio is taken against that round's numpy run and the
median of the per-round ratios is reported, with the median wall times. ``import tensorflow`` is
timed once for scale (what these commands used to pay). Targets: each command <= 3x the numpy
import and under 1 s.

    python benchmarks/cli_startup.py [--rounds 15] [--no-tensorflow]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import print_table, write_result  # noqa: E402

ROOT = os.path.dirname(HERE)
COMMANDS = {
    "tfxfer --help": [sys.executable, "-m", "tfxfer.cli", "--help"],
    "tfxfer datasets": [sys.executable, "-m", "tfxfer.cli", "datasets"],
    "tfxfer backbones": [sys.executable, "-m", "tfxfer.cli", "backbones"],
}
YARDSTICK = ("python -c 'import numpy'", [sys.executable, "-c", "import numpy"])
TARGET_RATIO, TARGET_SECONDS = 3.0, 1.0


def wall(argv) -> float:
    """Seconds from start to exit of one fresh process (its output discarded); it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-tensorflow", action="store_true", help="skip the one `import tensorflow` timing")
    args = parser.parse_args()

    entries = [YARDSTICK, *COMMANDS.items()]
    for _, argv in entries:  # warm the file cache once
        wall(argv)
    times = {name: [] for name, _ in entries}
    ratios = {name: [] for name in COMMANDS}
    for r in range(args.rounds):
        order = entries[r % len(entries):] + entries[:r % len(entries)]
        this_round = {name: wall(argv) for name, argv in order}
        for name, seconds in this_round.items():
            times[name].append(seconds)
        for name in COMMANDS:
            ratios[name].append(this_round[name] / this_round[YARDSTICK[0]])

    rows = [{"command": YARDSTICK[0], "median_s": round(statistics.median(times[YARDSTICK[0]]), 4),
             "min_s": round(min(times[YARDSTICK[0]]), 4), "ratio_to_numpy": 1.0, "target_met": None}]
    for name in COMMANDS:
        median_s, ratio = statistics.median(times[name]), statistics.median(ratios[name])
        rows.append({"command": name, "median_s": round(median_s, 4), "min_s": round(min(times[name]), 4),
                     "ratio_to_numpy": round(ratio, 3),
                     "target_met": bool(ratio <= TARGET_RATIO and median_s < TARGET_SECONDS)})
    summary = {"rounds": args.rounds, "target": f"<= {TARGET_RATIO}x python -c 'import numpy' and < {TARGET_SECONDS} s",
               "all_met": all(r["target_met"] for r in rows[1:])}
    if not args.no_tensorflow:
        seconds = wall([sys.executable, "-c", "import tensorflow"])
        summary["import_tensorflow_s"] = round(seconds, 3)
        summary["import_tensorflow_ratio_to_numpy"] = round(seconds / statistics.median(times[YARDSTICK[0]]), 1)
    print_table(rows)
    print(summary)
    write_result("cli_startup", rows, summary)


if __name__ == "__main__":
    main()
