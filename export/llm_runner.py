#!/usr/bin/env python3
"""Generate text with a tfxfer causal LM's TFLite decoder on a device: numpy + LiteRT, no TensorFlow.

``tfxfer.export.decoder_tflite.save_decoder`` writes three files; copy them with this runner and
``bpe_tokenizer.py`` (the exact byte-level BPE, standard library only) to the device, then:

    pip install numpy ai-edge-litert
    python3 llm_runner.py decoder.json "The capital of France is" --max-new-tokens 16
    python3 llm_runner.py decoder.json "Once upon a time" --sampler top_p --top-p 0.9 --seed 0

The sidecar (``decoder.json``, format ``tfxfer-llm-tflite``) names the ``.tflite`` file (its sha256
must match), the tokenizer JSON and the stop tokens; a file whose sidecar says it failed its
verification gate is refused unless ``--allow-failed``. The prompt is tokenized exactly as the
model was trained (Hugging Face's byte-level pre-tokenizer, `bpe_tokenizer.BytePairTokenizer.
from_causal_lm`), fed through the file's ``prefill`` signature in whole chunks and its ``decode``
signature for the rest, then each new token comes from the sampler and goes back through
``decode`` until a stop token (not printed) or ``--max-new-tokens``. A prompt that leaves too little
room in the file's cache is cut from the left with a warning naming the limit, as
``tfxfer.causal_lm.generate`` does.

Samplers (numpy; the random ones draw from ``numpy.random.default_rng(seed)``, so their draws are
not keras-hub's): ``greedy`` (default), ``random``, ``top_k`` (``--top-k``, default 50), ``top_p``
(``--top-p``, default 0.9), each but greedy with ``--temperature``.

``--json`` prints one document, schema ``tfxfer/1`` (``tfxfer/cli/json_output.py``), the same
as ``tfxfer generate --json``:

    {"schema": "tfxfer/1", "command": "llm_runner", "ok": true, "exit_code": 0, "error": null,
     "model": "decoder.tflite", "threads": 2,
     "results": [{"prompt": "...", "text": "...", "token_ids": [...], "prompt_tokens": 7,
                  "new_tokens": 16, "stopped": "max_new_tokens", "ms_per_token": 61.2}]}

A fatal error (missing file, bad sidecar, bad setting, a command line argparse refuses, a prompt the
tokenizer refuses) prints
``"ok": false`` with the ``error`` object (without ``--json``: one ``error: ...`` line on stderr) and
exits with code 2; the message names the option (``--seed``) or the prompt (``prompts[1]``). A
prompt is refused when it is empty, is not UTF-8 (a lone surrogate such as ``"\\udcff"`` is what
Python makes of such an argument) or holds a character whose UTF-8 bytes the vocabulary has no
token for (SmolLM2 lacks a few, such as ``"\\x14"``), as ``tfxfer generate`` refuses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

SIDECAR_FORMAT = "tfxfer-llm-tflite"
JSON_SCHEMA = "tfxfer/1"  # tfxfer/cli/json_output.py
SAMPLERS = ("greedy", "random", "top_k", "top_p")
MAX_THREADS = 1024  # tfxfer/recipes/config_checks.py MAX_THREADS
MAX_SEED = 2**32 - 1  # tfxfer/causal_lm/samplers.py MAX_SEED: the seeds `tfxfer generate` accepts


def load_interpreter_class():
    """LiteRT's Interpreter, or tflite-runtime's on devices that only have that."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            sys.exit("Install the LiteRT interpreter: pip install ai-edge-litert (or tflite-runtime)")
    return Interpreter


class Sampler:
    """Picks the next id from logits: "greedy", "random", "top_k" or "top_p" (see the module doc)."""

    def __init__(self, name: str = "greedy", *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None):
        if name not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}. Received: {name!r}")
        if not (temperature > 0 and math.isfinite(temperature)):  # inf would make every draw uniform
            raise ValueError(f"`temperature` must be a finite number > 0. Received: {temperature!r}")
        if name == "greedy" and (temperature != 1.0 or top_k is not None or top_p is not None or seed is not None):
            raise ValueError("greedy takes no temperature, top_k, top_p or seed")
        if top_k is not None and (name != "top_k" or int(top_k) < 1):
            raise ValueError(f"`top_k` must be an int >= 1, with sampler top_k only. Received: {top_k!r}")
        if top_p is not None and (name != "top_p" or not 0 < float(top_p) <= 1):
            raise ValueError(f"`top_p` must be in (0, 1], with sampler top_p only. Received: {top_p!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
            raise ValueError(f"`seed` (--seed) must be an int in [0, {MAX_SEED}]. Received: seed={seed!r}")
        self.name, self.temperature = name, float(temperature)
        self.top_k = 50 if top_k is None else int(top_k)
        self.top_p = 0.9 if top_p is None else float(top_p)
        self._rng = np.random.default_rng(seed)
        self._top_k_given = top_k is not None

    def check_vocabulary(self, vocabulary_size: int) -> None:
        """Refuse a ``top_k`` above the model's vocabulary size (as tfxfer's ``check_sampler``)."""
        if self.name == "top_k" and self._top_k_given and self.top_k > vocabulary_size:
            raise ValueError(f"`top_k` must be <= the vocabulary size ({vocabulary_size}). Received: {self.top_k}")

    def __call__(self, logits) -> int:
        logits = np.asarray(logits, dtype=np.float64)
        if self.name == "greedy":
            return int(np.argmax(logits))
        logits = logits / self.temperature
        order = np.argsort(-logits, kind="stable")
        if self.name == "top_k":
            order = order[: self.top_k]
        chosen = logits[order]
        probs = np.exp(chosen - chosen.max())
        probs /= probs.sum()
        if self.name == "top_p":
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p) + 1)
            order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
        return int(order[self._rng.choice(len(order), p=probs)])


class _PlainRunner:
    """A signature runner's interface over a file without signatures (one function converted
    straight from a frozen graph): inputs found by name, outputs by rank."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        self.inputs = {key: next(d for d in inputs if key in d["name"]) for key in ("token_ids", "cache", "index")}
        outputs = interpreter.get_output_details()
        self.outputs = {"cache": next(d for d in outputs if len(d["shape"]) == 6),
                        "logits": next(d for d in outputs if len(d["shape"]) == 3)}

    def get_input_details(self):
        return self.inputs

    def get_output_details(self):
        return self.outputs

    def __call__(self, **feeds):
        for key, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[key]["index"], value)
        self.interpreter.invoke()
        return {key: self.interpreter.get_tensor(d["index"]) for key, d in self.outputs.items()}


class Decoder:
    """The ``.tflite`` file's ``prefill`` / ``decode`` signatures over one KV cache."""

    def __init__(self, model_path: str, *, num_threads: int | None = None):
        self.interpreter = load_interpreter_class()(model_path=model_path, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if not signatures:  # a decode-only file converted from one frozen function
            self.runners = {"decode": _PlainRunner(self.interpreter)}
        elif "decode" not in signatures:
            raise ValueError(f"{model_path} has no 'decode' signature (has {sorted(signatures)})")
        else:
            self.runners = {name: self.interpreter.get_signature_runner(name) for name in ("decode", "prefill")
                            if name in signatures}
        self.cache_shape = tuple(int(d) for d in self.runners["decode"].get_input_details()["cache"]["shape"])
        self.prefill_tokens = (int(self.runners["prefill"].get_input_details()["token_ids"]["shape"][1])
                               if "prefill" in self.runners else None)
        self.cache_length = self.cache_shape[3]
        self.vocabulary_size = int(self.runners["decode"].get_output_details()["logits"]["shape"][-1])
        self.reset()

    def reset(self) -> None:
        self.cache = np.zeros(self.cache_shape, dtype=np.float32)
        self.position = 0

    def _run(self, name, ids):
        out = self.runners[name](token_ids=np.asarray([ids], dtype=np.int32), cache=self.cache,
                                 index=np.asarray(self.position, dtype=np.int32))
        self.cache = out["cache"]
        self.position += len(ids)
        return out["logits"][0]

    def feed(self, ids) -> np.ndarray:
        """Next-token logits of each of ``ids`` (prefill chunks first, then decode steps)."""
        ids = [int(i) for i in ids]
        if self.position + len(ids) > self.cache_length:
            raise ValueError(f"{len(ids)} more ids would pass the cache length {self.cache_length}")
        out, i, chunk = [], 0, self.prefill_tokens
        while chunk and len(ids) - i >= chunk:
            out.append(self._run("prefill", ids[i: i + chunk]))
            i += chunk
        out.extend(self._run("decode", [t]) for t in ids[i:])
        return np.concatenate(out)


def _tokenizer(folder: str, name: str):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        from bpe_tokenizer import BytePairTokenizer
    except ImportError:
        sys.exit("Copy bpe_tokenizer.py beside llm_runner.py")
    path = os.path.join(folder, name)
    tokenizer = BytePairTokenizer.from_causal_lm(path)  # a damaged file: a ValueError naming it
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    bos = config.get("bos_token_id") if config.get("add_bos_token") else None
    if bos is not None and (not isinstance(bos, int) or isinstance(bos, bool) or bos < 0):
        raise ValueError(f"{path}: `bos_token_id` must be a token id (an int >= 0). Received: {bos!r}")
    return tokenizer, bos


def read_sidecar(path: str) -> dict:
    """The decoder's sidecar, its fields checked: a file that is not one (not JSON, a JSON list, a
    field of the wrong type) is a ``ValueError`` naming the file and the field."""
    what = f"{path} is not a {SIDECAR_FORMAT} sidecar"
    try:
        with open(path, encoding="utf-8") as f:
            sidecar = json.load(f)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # a .tflite given by mistake, a damaged file
        raise ValueError(f"{what} (not JSON: {type(exc).__name__}); give the decoder's .json sidecar") from None
    if not isinstance(sidecar, dict):
        raise ValueError(f"{what}: expected a JSON object, got a JSON {type(sidecar).__name__}")
    if sidecar.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path}: format {sidecar.get('format')!r} is not {SIDECAR_FORMAT!r}")
    for key in ("model", "tokenizer", "sha256"):
        if not isinstance(sidecar.get(key), str) or not sidecar[key]:
            raise ValueError(f"{what}: `{key}` must be a non-empty string. Received: {key}={sidecar.get(key)!r}")
    if not isinstance(sidecar.get("tokenizer_sha256"), (str, type(None))):
        raise ValueError(f"{what}: `tokenizer_sha256` must be a string. "
                         f"Received: tokenizer_sha256={sidecar['tokenizer_sha256']!r}")
    stops = sidecar.get("stop_token_ids", [])
    if not isinstance(stops, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                              for i in stops):
        raise ValueError(f"{what}: `stop_token_ids` must be a list of token ids (ints >= 0). "
                         f"Received: stop_token_ids={stops!r}")
    gate = sidecar.get("gate")
    if gate is not None and (not isinstance(gate, dict) or not isinstance(gate.get("failures", []), list)):
        raise ValueError(f"{what}: `gate` must be an object with a list of `failures`. Received: gate={gate!r}"[:300])
    return sidecar


class LLMRunner:
    """A saved decoder (its sidecar) ready to `generate`."""

    def __init__(self, sidecar_path: str, *, num_threads: int | None = None, allow_failed: bool = False):
        self.sidecar = read_sidecar(sidecar_path)
        folder = os.path.dirname(os.path.abspath(sidecar_path))
        self.model_path = os.path.join(folder, self.sidecar["model"])
        with open(self.model_path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != self.sidecar["sha256"]:
            raise ValueError(f"{sidecar_path} belongs to another file (sha256 {self.sidecar['sha256'][:12]}"
                             f"..., {self.sidecar['model']} has {digest[:12]}...)")
        gate = self.sidecar.get("gate")
        if isinstance(gate, dict) and gate.get("passed") is False and not allow_failed:
            reasons = "; ".join(str(r) for r in gate.get("failures", [])) or "see the export report"
            raise ValueError(f"{self.sidecar['model']} failed its verification gate ({reasons}); "
                             "pass --allow-failed to run it anyway")
        expected = self.sidecar.get("tokenizer_sha256")  # absent in sidecars written before it was recorded
        if expected is not None:
            with open(os.path.join(folder, self.sidecar["tokenizer"]), "rb") as f:
                found = hashlib.sha256(f.read()).hexdigest()
            if found != expected:
                raise ValueError(f"{self.sidecar['tokenizer']} is not the tokenizer {sidecar_path} was saved with "
                                 f"(sha256 {found[:12]}..., expected {str(expected)[:12]}...)")
        self.tokenizer, self.bos_token_id = _tokenizer(folder, self.sidecar["tokenizer"])
        self.stop_token_ids = set(self.sidecar.get("stop_token_ids", []))
        self.decoder = Decoder(self.model_path, num_threads=num_threads)

    def encode(self, prompt: str, *, name: str = "prompt") -> list:
        """Token ids of ``prompt`` (start token first when the model wants one); a text the tokenizer
        refuses (see the module doc) is a ``ValueError`` naming ``name``."""
        ids = self.tokenizer.encode(prompt, name=name)
        return ([self.bos_token_id] if self.bos_token_id is not None else []) + ids

    def generate(self, prompt: str, *, max_new_tokens: int = 32, sampler: Sampler | None = None,
                 name: str = "prompt") -> dict:
        """Continue ``prompt``; returns text, new ids, counts, why it stopped and ms per new token.
        A prompt that is empty or that the tokenizer refuses is a ``ValueError`` naming ``name``."""
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={prompt!r}")
        limit = self.decoder.cache_length - int(max_new_tokens)
        if int(max_new_tokens) < 1 or limit < 1:
            raise ValueError(f"`max_new_tokens` must be in [1, {self.decoder.cache_length - 1}] (the file's cache "
                             f"holds {self.decoder.cache_length}). Received: {max_new_tokens!r}")
        sampler = sampler or Sampler()
        sampler.check_vocabulary(self.decoder.vocabulary_size)
        ids = self.encode(prompt, name=name)
        if len(ids) > limit:
            # keep the start token first and the prompt's end, as tfxfer's generate does (BPETokenizer.keep_last)
            kept = 1 if self.bos_token_id is not None and limit > 1 else 0
            print(f"warning: the prompt has {len(ids)} tokens; the cache holds {self.decoder.cache_length} and "
                  f"max_new_tokens={max_new_tokens}, so it is cut to {'its start token and ' if kept else ''}"
                  f"its last {limit - kept} tokens", file=sys.stderr)
            ids = ids[:kept] + ids[len(ids) - (limit - kept):]
        self.decoder.reset()
        token = sampler(self.decoder.feed(ids)[-1])
        new, stopped, steps, start = [], "max_new_tokens", 0, time.perf_counter()
        while True:
            if token in self.stop_token_ids:
                stopped = "stop_token"
                break
            new.append(token)
            if len(new) == max_new_tokens:
                break
            token = sampler(self.decoder.feed([token])[-1])
            steps += 1
        seconds = time.perf_counter() - start
        return {"prompt": prompt, "text": self.tokenizer.decode(new), "token_ids": new, "prompt_tokens": len(ids),
                "new_tokens": len(new), "stopped": stopped,
                "ms_per_token": 1000 * seconds / max(steps, 1)}  # per timed decode step


def _document(ok: bool, error=None, **fields) -> dict:
    exit_code = 0 if ok else 2
    return {"schema": JSON_SCHEMA, "command": "llm_runner", "ok": ok, "exit_code": exit_code,
            "error": None if error is None else {"type": type(error).__name__, "message": str(error),
                                                 "exit_code": exit_code}, **fields}


class UsageError(ValueError):
    """A command line argparse refuses (a non-integer, an unknown sampler, no prompt)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # options are not abbreviated (allow_abbrev=False), and after "--" every argument is a prompt
    wants_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    parser = _Parser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("sidecar", help="the decoder's sidecar JSON written by tfxfer (decoder.json)")
    parser.add_argument("prompts", nargs="+", help="prompts to continue")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--sampler", choices=SAMPLERS, default="greedy")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--allow-failed", action="store_true", help="run a file that failed its gate")
    parser.add_argument("--json", action="store_true", help="print one tfxfer/1 JSON document")
    try:
        args = parser.parse_args(argv)
    except UsageError as e:  # as litert_runner: one line, and the ok:false document under --json
        if wants_json:
            print(json.dumps(_document(False, e, model=None, threads=None, results=[])))
        print(f"llm_runner.py: error: {e}", file=sys.stderr)
        return 2
    try:
        for flag, value, low in (("--seed", args.seed, 0), ("--threads", args.threads, 1)):
            if value is not None and value < low:
                raise ValueError(f"`{flag}` must be an int >= {low}. Received: {flag} {value}")
        if args.threads is not None and args.threads > MAX_THREADS:  # LiteRT crashes far above it
            raise ValueError(f"`--threads` must be an int in [1, {MAX_THREADS}]. Received: --threads {args.threads}")
        sampler = Sampler(args.sampler, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed)
        runner = LLMRunner(args.sidecar, num_threads=args.threads, allow_failed=args.allow_failed)
        results = [runner.generate(p, max_new_tokens=args.max_new_tokens, sampler=sampler, name=f"prompts[{i}]")
                   for i, p in enumerate(args.prompts)]
    except Exception as e:  # OSError, ValueError, LiteRT's RuntimeError, anything unforeseen: never a traceback
        if args.json:
            print(json.dumps(_document(False, e, model=None, threads=args.threads, results=[])))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_document(True, model=os.path.basename(runner.model_path), threads=args.threads,
                                   results=results), ensure_ascii=False))
    else:
        for r in results:
            print(r["prompt"] + r["text"])
            print(f"[{r['new_tokens']} tokens, {r['ms_per_token']:.1f} ms/token, stopped: {r['stopped']}]",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
