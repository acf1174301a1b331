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


def _fill(np, detail, shape, rng):
    """Plausible data for one input: pixels for images (quantized as the file asks), token ids
    for text models, all-ones padding masks and all-zero segment ids."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    name = detail["name"].lower()
    if dtype.kind in "iu" and not scale:  # token-id model input
        if "mask" in name:
            return np.ones(shape, dtype)
        if "segment" in name or "type" in name:
            return np.zeros(shape, dtype)
        return rng.integers(1, 5, shape).astype(dtype)  # small ids fit any vocabulary; latency ignores values
    pixels = rng.uniform(0, 255, shape).astype(np.float32)
    if dtype.kind == "f":
        return pixels.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(pixels / scale) + zero_point, info.min, info.max).astype(dtype)


def _prepare(Interpreter, np, path, threads, batch_size, rng):
    interpreter = Interpreter(model_path=path, num_threads=int(threads))
    inputs = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    shapes = []
    for inp in inputs:
        shape = [int(d) for d in inp["shape"]]
        if int(inp["shape_signature"][0]) == -1:
            shape[0] = batch_size
            interpreter.resize_tensor_input(inp["index"], shape)
        shapes.append(shape)
    interpreter.allocate_tensors()
    feeds = [(inp["index"], _fill(np, inp, shape, rng)) for inp, shape in zip(inputs, shapes)]

    def run():
        for index, data in feeds:
            interpreter.set_tensor(index, data)
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
    done, total = 0, len(per_round) * len(jobs)
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
            done += 1
            print(f"PROGRESS {done} {total}", file=sys.stderr, flush=True)  # read by bench._worker
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
