"""Run a `tfxfer.export.decoder_tflite` file in LiteRT: `TFLiteDecoder` (``reset()``, then ``feed(ids) -> logits``).

A decoder file has a ``decode`` signature (one id per call) and, unless it was converted decode-only,
a ``prefill`` one (a fixed-length chunk of ids); `SIGNATURES` names them. `TFLiteDecoder.feed` runs
whole prefill chunks while they remain, then decode steps, and carries the KV cache from call to call.
A decode-only file converted straight from one function has no signature: its inputs are found by
name and its outputs by rank. The gate (`tfxfer.export.decoder_verification`) runs files through it;
on a device, ``export/llm_runner.py`` at the repository root does the same with numpy and LiteRT only.

Example:
    >>> from tfxfer.export.decoder_runner import TFLiteDecoder
    >>> decoder = TFLiteDecoder(convert_decoder_tflite(lm, cache_length=64))  # doctest: +SKIP
    >>> decoder.feed([1, 2, 3]).shape == (3, decoder.vocabulary_size)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.export.litert import new_interpreter
from tfxfer.utils.validate import check_int

#: The signatures a decoder file holds: `tfxfer.export.decoder_tflite.convert_decoder_tflite` writes
#: them, `TFLiteDecoder` runs them.
SIGNATURES = ("decode", "prefill")


class TFLiteDecoder:
    """Runs a `convert_decoder_tflite` file in LiteRT: ``reset()``, then ``feed(ids) -> logits``."""

    def __init__(self, model_content: bytes, *, num_threads: int | None = None):
        """``model_content``: the bytes `convert_decoder_tflite` returned; `ArgumentTypeError` for anything
        else (a path, a string), `ModelError` naming their size when LiteRT cannot load them (truncated,
        corrupt, not a .tflite file)."""
        if not isinstance(model_content, (bytes, bytearray, memoryview)):
            raise ArgumentTypeError("model_content", model_content, "the bytes of a .tflite file "
                                    "(what convert_decoder_tflite returns; read a file with open(path, 'rb'))")
        model_content = bytes(model_content)
        num_threads = check_int("num_threads", num_threads, low=-1, allow_none=True)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - a declared dependency
            from tensorflow.lite.python.interpreter import Interpreter
        try:
            self._interpreter = new_interpreter(Interpreter, model_content=model_content, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:  # LiteRT: "The model is not a valid Flatbuffer buffer", ...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
            raise ModelError(f"`model_content` is not a loadable .tflite file (truncated or corrupt?): {reason}. "
                             f"Received: model_content=<{len(model_content)} bytes>") from exc
        self._runners = _signature_runners(self._interpreter)
        details = self._runners["decode"].get_input_details()
        self.cache_shape = tuple(int(d) for d in details["cache"]["shape"])
        self.prefill_tokens = (int(self._runners["prefill"].get_input_details()["token_ids"]["shape"][1])
                               if "prefill" in self._runners else None)
        self.vocabulary_size = int(self._runners["decode"].get_output_details()["logits"]["shape"][-1])
        self.reset()

    @property
    def cache_length(self) -> int:
        return self.cache_shape[3]

    def reset(self) -> None:
        """Forget every token seen so far."""
        self._cache = np.zeros(self.cache_shape, dtype=np.float32)
        self.position = 0

    def _run(self, name, ids):
        out = self._runners[name](token_ids=np.asarray([ids], dtype=np.int32), cache=self._cache,
                                  index=np.asarray(self.position, dtype=np.int32))
        self._cache = out["cache"]
        self.position += len(ids)
        return out["logits"][0]

    def feed(self, token_ids) -> np.ndarray:
        """Feed ids (prefill chunks while whole chunks remain, then decode steps); return their
        next-token logits ``(len(token_ids), vocabulary)``.

        Raises:
            ArgumentTypeError: ``token_ids`` is not a list / array of ints (a string, floats).
            ArgumentError: an id outside ``[0, vocabulary_size)``, or too many ids for the cache.
        """
        from tfxfer.causal_lm.tokenizer import check_token_ids

        if isinstance(token_ids, (list, tuple, np.ndarray)) and len(token_ids):
            array = np.asarray(token_ids, dtype=object) if not isinstance(token_ids, np.ndarray) else token_ids
            if array.ndim > 1:  # [[ids]]: one row, as before
                token_ids = array.reshape(-1)
        ids = check_token_ids("token_ids", token_ids, self.vocabulary_size)
        if not ids:
            raise ArgumentError("token_ids", token_ids, "must hold at least one id")
        if self.position + len(ids) > self.cache_length:
            raise ArgumentError("token_ids", f"{len(ids)} ids",
                                f"would pass the cache length {self.cache_length} (at {self.position})")
        chunk, out, i = self.prefill_tokens, [], 0
        while chunk and len(ids) - i >= chunk:
            out.append(self._run("prefill", ids[i: i + chunk]))
            i += chunk
        out.extend(self._run("decode", [t]) for t in ids[i:])
        return np.concatenate(out)


class _PlainRunner:
    """A signature runner's interface over a file without signatures (one function converted
    straight from a frozen graph): inputs found by name, outputs by rank."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        self.inputs = {key: _one(inputs, lambda d: key in d["name"], f"input named {key!r}")
                       for key in ("token_ids", "cache", "index")}
        self.outputs = {"cache": _one(outputs, lambda d: len(d["shape"]) == 6, "cache output (rank 6)"),
                        "logits": _one(outputs, lambda d: len(d["shape"]) == 3, "logits output (rank 3)")}

    def get_input_details(self):
        return self.inputs

    def get_output_details(self):
        return self.outputs

    def __call__(self, **feeds):
        for key, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[key]["index"], value)
        self.interpreter.invoke()
        return {key: self.interpreter.get_tensor(d["index"]) for key, d in self.outputs.items()}


def _one(details: list, test, what: str) -> dict:
    """The first tensor of ``details`` passing ``test``; `ModelError` when a file is not a decoder."""
    found = next((d for d in details if test(d)), None)
    if found is None:
        raise ModelError(f"`model_content` is a .tflite file but not a decoder: it has no {what} (has "
                         f"{[d['name'] for d in details]}); pass a file convert_decoder_tflite wrote")
    return found


def _signature_runners(interpreter) -> dict:
    """``{"decode": runner[, "prefill": runner]}``; a decode-only file converted from one function
    has no signature (`_PlainRunner`)."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        return {"decode": _PlainRunner(interpreter)}
    if "decode" not in signatures:
        raise ArgumentError("model_content", "a TFLite file", f"must hold a 'decode' signature (has {sorted(signatures)})")
    return {name: interpreter.get_signature_runner(name) for name in signatures if name in SIGNATURES}
