"""LiteRT latency/memory worker, run as a script in a fresh process (imports numpy + LiteRT only).

Usage: python _bench_worker.py '<json config>'  ->  prints one JSON line with the measurements.

Modes:
* ``latency``: ``rounds`` rounds; in each, every (file, thread count) in turn gets a fresh
  interpreter, ``warmup`` untimed invocations and ``runs / rounds`` timed ones, and is then
  destroyed. Interleaving spreads background load evenly over the files being compared; one live
  interpreter at a time keeps idle thread pools from competing with the one being timed.
* ``memory``: load one file, allocate, invoke a few times; report the peak resident memory
  (VmHWM) above what the process held after importing numpy and LiteRT.
"""

import gc
import json
import resource
import sys
import time


def _rss_mib() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the forking parent's)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _prepare(Interpreter, np, path, threads, batch_size, rng):
    interpreter = Interpreter(model_path=path, num_threads=int(threads))
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    shape = [batch_size, *[int(d) for d in inp["shape"][1:]]]
    if int(inp["shape_signature"][0]) == -1:
        interpreter.resize_tensor_input(inp["index"], shape)
    else:
        shape = [int(d) for d in inp["shape"]]
    interpreter.allocate_tensors()
    pixels = rng.uniform(0, 255, shape).astype(np.float32)
    dtype = np.dtype(inp["dtype"])
    if dtype.kind == "f":
        data = pixels.astype(dtype)
    else:
        scale, zero_point = inp["quantization"]
        q = np.round(pixels / scale) + zero_point if scale else pixels
        info = np.iinfo(dtype)
        data = np.clip(q, info.min, info.max).astype(dtype)

    def run():
        interpreter.set_tensor(inp["index"], data)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])

    return interpreter, run


def main(config: dict) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    baseline = _rss_mib()
    rng = np.random.default_rng(0)
    if config["mode"] == "memory":
        keep = _prepare(Interpreter, np, config["paths"][0], config["threads"][0], config["batch_size"], rng)
        for _ in range(3):
            keep[1]()
        peak = _rss_mib()
        return {"peak_rss_mib": peak, "runtime_rss_mib": baseline, "model_memory_mib": max(peak - baseline, 0.0)}

    jobs = [(path, str(threads), []) for path in config["paths"] for threads in config["threads"]]
    rounds = max(1, min(config["rounds"], config["runs"]))
    per_round = [config["runs"] // rounds + (1 if r < config["runs"] % rounds else 0) for r in range(rounds)]
    for count in per_round:
        for path, threads, times in jobs:
            # One live interpreter at a time: an idle interpreter's thread pool spins for a while
            # after each invoke and would steal the cores from the next one being timed.
            interpreter, run = _prepare(Interpreter, np, path, threads, config["batch_size"], rng)
            for _ in range(config["warmup"]):
                run()
            for _ in range(count):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1000.0)
            del interpreter, run
            gc.collect()
    latency = {}
    for path, threads, times in jobs:
        times = np.asarray(times)
        latency.setdefault(path, {})[threads] = {
            "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)),
            "mean_ms": float(times.mean()),
            "min_ms": float(times.min()),
        }
    return {"latency": latency}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
