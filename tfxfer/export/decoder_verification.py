"""The decoder file's gate: next-token agreement and perplexity of a TFLite decoder against its Keras model.

`decoder_agreement` feeds ids through a `tfxfer.export.decoder_tflite` file (`TFLiteDecoder`) and
compares every position's next-token logits with the Keras model's on the whole sequence.
`decoder_gate` does the same on held-out texts, adds both models' perplexities, the file's size and
its decode time, and applies the limits (top-1 agreement >= 0.99 by default, the export gate's
dynamic-range limit; perplexity change within 2 %): a `DecoderGateReport` says whether the file may
ship. `tfxfer.export.decoder_tflite.save_decoder` writes only a file that passes (or says why not);
what each variant measured on SmolLM2 is in `tfxfer.export.decoder_tflite`'s docstring.

Example:
    >>> from tfxfer.export.decoder_verification import decoder_gate
    >>> blob = convert_decoder_tflite(lm, cache_length=256, quantization="float16")  # doctest: +SKIP
    >>> decoder_gate(lm, blob, ["Some held-out text."], variant="float16").passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.export.decoder_runner import TFLiteDecoder
from tfxfer.utils.validate import check_float


def _log_likelihood(logits, ids):
    logits = logits[:-1].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return log_probs[np.arange(len(ids) - 1), ids[1:]]


def _keras_logits(lm, ids):
    x = np.asarray([ids], dtype=np.int32)
    return np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}, training=False),
                      dtype=np.float32)[0]


def decoder_agreement(lm, model_content: bytes, token_ids) -> dict:
    """Feed ``token_ids`` through the TFLite file and compare every position's next-token logits
    with the Keras model on the whole sequence.

    Returns ``top1_agreement`` (fraction of positions with the same most likely next token),
    ``max_abs_diff`` (largest logit difference) and ``positions``.
    """
    from tfxfer.causal_lm.tokenizer import check_token_ids

    ids = check_token_ids("token_ids", token_ids, lm.backbone.vocabulary_size)
    decoder = TFLiteDecoder(model_content)
    got = decoder.feed(ids)
    expected = _keras_logits(lm, ids)
    return {"top1_agreement": float(np.mean(got.argmax(-1) == expected.argmax(-1))),
            "max_abs_diff": float(np.max(np.abs(got - expected))), "positions": len(ids)}


@dataclasses.dataclass
class DecoderGateReport:
    """`decoder_gate`'s measurements of one file and its verdict."""

    variant: str
    passed: bool
    failures: list
    positions: int
    top1_agreement: float
    max_abs_diff: float
    perplexity_keras: float
    perplexity_tflite: float
    perplexity_change: float
    size_mib: float
    ms_per_token: float
    thresholds: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        lines = [f"{self.variant}: {'PASS' if self.passed else 'FAIL'}  top-1 agreement {self.top1_agreement:.4f} "
                 f"on {self.positions} positions, perplexity {self.perplexity_keras:.3f} -> "
                 f"{self.perplexity_tflite:.3f} ({100 * self.perplexity_change:+.2f} %), max |logit diff| "
                 f"{self.max_abs_diff:.3g}, {self.size_mib:.1f} MiB, {self.ms_per_token:.1f} ms/token (decode)"]
        lines += [f"  {self.variant}: {failure}" for failure in self.failures]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def decoder_gate(lm, model_content: bytes, texts, *, variant: str = "", min_top1_agreement: float | None = None,
                 max_perplexity_change: float = 0.02, num_threads: int | None = None) -> DecoderGateReport:
    """Measure a decoder file against ``lm`` on held-out ``texts`` and apply the limits.

    Each text is tokenized (cut to the file's cache length) and fed through the file from an empty
    cache; every position's next-token argmax is compared with the Keras model's, and both models'
    perplexities are computed from their own logits.

    Args:
        texts: held-out strings (or lists of token ids).
        variant: a name for the report ("float32", "float16", "dynamic_int8").
        min_top1_agreement: fraction of positions (0-1); default the export gate's dynamic-range
            limit (`tfxfer.export.gate.DEFAULT_THRESHOLDS`, 0.99).
        max_perplexity_change: largest relative perplexity change (0.02 = 2 %).
    """
    from tfxfer.export.gate import DEFAULT_THRESHOLDS

    if min_top1_agreement is None:
        min_top1_agreement = DEFAULT_THRESHOLDS["dynamic"].min_top1_agreement
    min_top1_agreement = check_float("min_top1_agreement", min_top1_agreement, low=0.0, high=1.0)
    max_perplexity_change = check_float("max_perplexity_change", max_perplexity_change, low=0.0)
    from tfxfer.causal_lm.tokenizer import check_sequence, check_token_ids

    if isinstance(texts, str):
        raise ArgumentError("texts", texts, "must be a non-empty list of held-out strings (wrap one in a list)")
    texts = check_sequence("texts", texts, "a list of held-out strings (or lists of token ids)")  # a generator too
    if not texts:
        raise ArgumentError("texts", texts, "must be a non-empty list of held-out strings")
    decoder = TFLiteDecoder(model_content, num_threads=num_threads)
    agree, positions, max_diff, ll_keras, ll_tflite, decode_seconds, decode_steps = 0, 0, 0.0, [], [], 0.0, 0
    for i, text in enumerate(texts):
        ids = (lm.tokenizer.encode(text, name=f"texts[{i}]") if isinstance(text, str)
               else check_token_ids(f"texts[{i}]", text, min(lm.backbone.vocabulary_size, decoder.vocabulary_size)))
        ids = ids[: decoder.cache_length]
        if len(ids) < 2:
            raise ArgumentError("texts", text, "must hold at least 2 tokens each")
        decoder.reset()
        got = decoder.feed(ids[:-1])
        start = time.perf_counter()
        got = np.concatenate([got, decoder.feed(ids[-1:])])
        decode_seconds, decode_steps = decode_seconds + time.perf_counter() - start, decode_steps + 1
        expected = _keras_logits(lm, ids)
        agree += int(np.sum(got.argmax(-1) == expected.argmax(-1)))
        positions += len(ids)
        max_diff = max(max_diff, float(np.max(np.abs(got - expected))))
        ll_keras.append(_log_likelihood(expected, ids))
        ll_tflite.append(_log_likelihood(got, ids))
    ppl_keras = float(np.exp(-np.concatenate(ll_keras).mean()))
    ppl_tflite = float(np.exp(-np.concatenate(ll_tflite).mean()))
    change = ppl_tflite / ppl_keras - 1.0
    agreement = agree / positions
    failures = []
    if agreement < min_top1_agreement:
        failures.append(f"top-1 agreement {agreement:.4f} < {min_top1_agreement}")
    if abs(change) > max_perplexity_change:
        failures.append(f"perplexity change {100 * change:+.2f} % beyond +/-{100 * max_perplexity_change:.1f} %")
    return DecoderGateReport(
        variant=variant, passed=not failures, failures=failures, positions=positions, top1_agreement=agreement,
        max_abs_diff=max_diff, perplexity_keras=ppl_keras, perplexity_tflite=ppl_tflite, perplexity_change=change,
        size_mib=len(model_content) / 2**20, ms_per_token=1000 * decode_seconds / decode_steps,
        thresholds={"min_top1_agreement": min_top1_agreement, "max_perplexity_change": max_perplexity_change})
