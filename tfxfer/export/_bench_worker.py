"""LiteRT latency/memory worker, run as a script in a fresh process (imports numpy + LiteRT only).

Usage: python _bench_worker.py '<json config>'  ->  prints one JSON line with the measurements.
"""

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


def main(config: dict) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    baseline = _rss_mib()
    rng = np.random.default_rng(0)
    latency = {}
    for threads in config["threads"]:
        interpreter = Interpreter(model_path=config["path"], num_threads=int(threads))
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        shape = [config["batch_size"], *[int(d) for d in inp["shape"][1:]]]
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
        for _ in range(config["warmup"]):
            interpreter.set_tensor(inp["index"], data)
            interpreter.invoke()
        times = []
        for _ in range(config["runs"]):
            start = time.perf_counter()
            interpreter.set_tensor(inp["index"], data)
            interpreter.invoke()
            interpreter.get_tensor(out["index"])
            times.append((time.perf_counter() - start) * 1000.0)
        times = np.asarray(times)
        latency[str(threads)] = {
            "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)),
            "mean_ms": float(times.mean()),
            "min_ms": float(times.min()),
        }
        del interpreter
    peak = _rss_mib()
    return {"latency": latency, "peak_rss_mib": peak, "runtime_rss_mib": baseline,
            "model_memory_mib": max(peak - baseline, 0.0)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
