"""Benchmark a .tflite file: size, LiteRT latency at 1 and N threads (median, p90), peak memory.

Latency and memory are measured in fresh Python processes that import only numpy and LiteRT
(`tfxfer/export/_bench_worker.py`), so TensorFlow in the calling process neither competes for the
cores nor inflates the memory figure. Each (file, thread count) gets its own interpreter, ``warmup``
untimed runs, then ``runs`` timed ``set_tensor + invoke + get_tensor`` calls. `benchmark_many`
times several files interleaved in rounds, so background load hits them alike (use it to compare
variants on a shared machine).

Example:
    >>> import keras, os, tempfile
    >>> from tfxfer.export import export_tflite, benchmark_tflite
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> f = export_tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"), variant="float32")
    >>> result = benchmark_tflite(f.path, threads=(1, 2), runs=5)
    >>> sorted(result.latency), result.size_bytes == os.path.getsize(f.path)
    (['1', '2'], True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from tfxfer.errors import ArgumentError, ExportError

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bench_worker.py")


@dataclasses.dataclass
class BenchmarkResult:
    """Size, latency per thread count (``{"1": {"median_ms", "p90_ms", ...}}``) and memory (NaN if not measured)."""

    path: str
    size_bytes: int
    latency: dict
    peak_rss_mib: float
    model_memory_mib: float
    runtime_rss_mib: float
    warmup: int
    runs: int
    batch_size: int

    @property
    def size_mib(self) -> float:
        return self.size_bytes / 2**20

    def median_ms(self, threads: int = 1) -> float:
        return self.latency[str(threads)]["median_ms"]

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), size_mib=self.size_mib)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(name, value, "must be an int >= 1")


def _worker(config: dict, timeout_s: float, what: str, progress=None) -> dict:
    """Run the worker script; ``progress(done, total)`` follows its ``PROGRESS`` lines on stderr."""
    import collections
    import threading

    proc = subprocess.Popen([sys.executable, _WORKER, json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    tail: collections.deque = collections.deque(maxlen=20)

    def pump():
        for line in proc.stderr:
            if line.startswith("PROGRESS "):
                if progress is not None:
                    done, total = (int(v) for v in line.split()[1:3])
                    progress(done, total)
            else:
                tail.append(line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise ExportError(f"Benchmark of {what} did not finish in {timeout_s} s") from exc
    reader.join(timeout=10)
    lines = [line for line in proc.stdout.read().splitlines() if line.startswith("{")]
    proc.stdout.close()
    if proc.returncode != 0 or not lines:
        error = "\n".join(list(tail)[-5:])
        raise ExportError(f"Benchmark of {what} failed (exit {proc.returncode}): {error}")
    return json.loads(lines[-1])


def benchmark_many(
    paths,
    *,
    threads=(1, 2),
    warmup: int = 10,
    runs: int = 50,
    rounds: int | None = None,
    batch_size: int = 1,
    memory: bool = True,
    timeout_s: float = 600.0,
    progress=None,
) -> dict:
    """Benchmark several files side by side; returns ``{path: BenchmarkResult}``.

    All files are timed in one fresh process, interleaved in ``rounds`` rounds (default: rounds of
    10 consecutive runs per file and thread count, each with a fresh interpreter and warm-up), so background load on a shared machine affects
    them alike and their ratios stay meaningful. Memory is measured per file in its own fresh
    process. ``progress(done, total)``, if given, is called after each (file, thread count) block of
    each round. See `benchmark_tflite` for the other arguments.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ArgumentError("paths", paths, "must name at least one .tflite file")
    for path in paths:
        if not os.path.isfile(path):
            raise ArgumentError("path", path, "must be an existing .tflite file")
    threads = tuple(threads)
    if not threads:
        raise ArgumentError("threads", threads, "must name at least one thread count")
    for t in threads:
        _positive_int("threads", t)
    _positive_int("runs", runs)
    if rounds is None:
        rounds = max(1, runs // 10)
    _positive_int("rounds", rounds)
    _positive_int("batch_size", batch_size)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ArgumentError("warmup", warmup, "must be an int >= 0")
    absolute = [os.path.abspath(p) for p in paths]
    config = {"mode": "latency", "paths": absolute, "threads": list(threads), "warmup": warmup,
              "runs": runs, "rounds": rounds, "batch_size": batch_size}
    latency = _worker(config, timeout_s, ", ".join(paths), progress)["latency"]
    results = {}
    for path, full in zip(paths, absolute):
        measured = {"peak_rss_mib": float("nan"), "runtime_rss_mib": float("nan"), "model_memory_mib": float("nan")}
        if memory:
            measured = _worker(dict(config, mode="memory", paths=[full], threads=[threads[0]]), timeout_s, path)
        results[path] = BenchmarkResult(path=path, size_bytes=os.path.getsize(path), latency=latency[full],
                                        warmup=warmup, runs=runs, batch_size=batch_size, **measured)
    return results


def benchmark_tflite(
    path,
    *,
    threads=(1, 2),
    warmup: int = 10,
    runs: int = 50,
    rounds: int | None = None,
    batch_size: int = 1,
    memory: bool = True,
    timeout_s: float = 600.0,
) -> BenchmarkResult:
    """Measure ``path`` in a fresh LiteRT process.

    Args:
        path: the .tflite file.
        threads: thread counts to time, each with its own interpreter.
        warmup: untimed invocations before timing.
        runs: timed invocations (median and p90 are reported).
        rounds: the timed runs are split into this many rounds (see `benchmark_many`).
        batch_size: images per invocation (for files with a dynamic batch dimension).
        memory: also measure peak memory (a second short process).
        timeout_s: give up after this many seconds.

    Returns:
        A `BenchmarkResult`.
    """
    path = os.fspath(path)
    return benchmark_many([path], threads=threads, warmup=warmup, runs=runs, rounds=rounds,
                          batch_size=batch_size, memory=memory, timeout_s=timeout_s)[path]
