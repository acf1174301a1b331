"""Which gated file ships: the delivery chain (`DELIVERY_CHAIN`), its remedies (`REMEDY_OF`), `choose_delivery`.

The gate (`tfxfer.export.gate`) judges each file on its own; this policy picks among the files it
judged. A run that asks for a full-integer file delivers the first integer file of the chain
(quantization-aware, post-training, selective) that passed its gate and reached its agreement target
(`tfxfer.export.gate.INT8_AGREEMENT_TARGET`: reported, never a gate failure); else the passing integer
file with the highest agreement; else the first float file of the chain that passed. `needs_remedy`
says when the next remedy is worth making, and `superseded_by` which failed files the delivered one
stands in for (they stay in the table, marked FAIL, but do not fail the run). The recipe's export
stages (`tfxfer.recipes.export_stages`) call these.

Example:
    >>> from types import SimpleNamespace as R
    >>> results = {"int8": R(passed=False, failures=["accuracy drop 2.10 points > 1.0"]), "float32": R(passed=True)}
    >>> choose_delivery(results, "int8")
    ('float32', 'no integer file passed its gate (int8: accuracy drop 2.10 points > 1.0); delivering float32')
"""

from __future__ import annotations

from tfxfer.errors import ArgumentTypeError

#: The delivery chain of a run that asks for int8: the quantization-aware file, the post-training file,
#: the selective file (the most harmful tensors in float, `tfxfer.quantize.selective_int8`), then
#: the float files that passed their gate, smallest first (a text model's ``weight_only`` file, the
#: dynamic file's int8 weights with float arithmetic, right after ``dynamic``).
DELIVERY_CHAIN = ("int8_qat", "int8", "int8_selective", "dynamic", "weight_only", "float16", "float32")

#: Remedy files and the file they stand in for: a delivered, passing remedy supersedes that file (it
#: stays in the table, marked FAIL, but does not fail the run), as a passing integer file supersedes
#: the other integer files.
REMEDY_OF = {"weight_only": "dynamic"}


def is_integer_variant(variant: str) -> bool:
    """Whether ``variant`` names a full-integer file (``int8``, ``int8_qat``, ``int8_selective``)."""
    return variant == "int8" or str(variant).startswith("int8_")


def superseded_by(results: dict, delivered: str | None) -> list[str]:
    """The files of ``results`` that the ``delivered`` file stands in for, when it passed its gate: the
    other integer files (post-training, QAT, selective) for an integer file; ``REMEDY_OF``'s file for a
    remedy (``weight_only`` for a failed ``dynamic``). They stay in the table but do not fail the run.

    Example:
        >>> from types import SimpleNamespace as R
        >>> superseded_by({"dynamic": R(passed=False), "weight_only": R(passed=True)}, "weight_only")
        ['dynamic']
    """
    if delivered is None or delivered not in results or not results[delivered].passed:
        return []
    if is_integer_variant(delivered):
        return [v for v in results if is_integer_variant(v) and v != delivered]
    return [v for v in results if v == REMEDY_OF.get(delivered)]


def needs_remedy(results: dict, preferred: str) -> bool:
    """Whether the run asked for a full-integer file (``preferred``) and none of ``results``
    (``{variant: VariantResult}``) both passed its gate and reached its agreement target: then the next
    remedy of `DELIVERY_CHAIN` is worth trying."""
    if not is_integer_variant(preferred):
        return False
    return not any(r.passed and r.meets_agreement_target is not False
                   for v, r in results.items() if is_integer_variant(v))


def choose_delivery(results: dict, preferred: str, *, chain=DELIVERY_CHAIN) -> tuple[str | None, str]:
    """``(variant, reason)``: which gated file ships, and why when it is not simply ``preferred``.

    For an integer ``preferred`` (the recipe's ``deliver: int8``): the first integer file of ``chain``
    that passed its gate and reached its agreement target; else the passing integer file with the
    highest agreement (the reason says the target was missed); else the first float file of ``chain``
    that passed (the reason names the integer files' failures). For another ``preferred``: it, if it
    passed, else the first passing file of ``chain``. ``(None, reason)`` when nothing passed.

    Example:
        >>> import numpy as np
        >>> from tfxfer.export.gate import DEFAULT_THRESHOLDS, compare_outputs
        >>> ref = np.array([[0.9, 0.1]] * 98 + [[0.4, 0.6]] * 2, "float32")
        >>> labels = ref.argmax(1)
        >>> int8 = compare_outputs("int8", None, ref, ref[::-1], labels, ["a", "b"], DEFAULT_THRESHOLDS["int8"])
        >>> f32 = compare_outputs("float32", None, ref, ref, labels, ["a", "b"], DEFAULT_THRESHOLDS["float32"])
        >>> choose_delivery({"float32": f32, "int8": int8}, "int8")[0]
        'float32'
    """
    if not isinstance(results, dict):
        raise ArgumentTypeError("results", results, "a dict {variant: VariantResult}")
    ordered = [v for v in chain if v in results] + [v for v in results if v not in chain]
    if not is_integer_variant(preferred):
        if preferred in results and results[preferred].passed:
            return preferred, ""
        fallback = next((v for v in ordered if results[v].passed), None)
        why = "; ".join(results[preferred].failures) if preferred in results else "it was not exported"
        return fallback, f"{preferred} failed its gate ({why})" + (f"; delivering {fallback}" if fallback else "")
    integer = [v for v in ordered if is_integer_variant(v)]
    for v in integer:
        if results[v].passed and results[v].meets_agreement_target is not False:
            missed = [u for u in integer[: integer.index(v)]]
            why = "; ".join(f"{u}: " + ("; ".join(results[u].failures) or
                                        f"top-1 agreement {results[u].top1_agreement:.4f} < {results[u].agreement_target}")
                            for u in missed)
            return v, (f"delivering {v} ({why})" if missed else "")
    passing = [v for v in integer if results[v].passed]
    if passing:
        best = max(passing, key=lambda v: results[v].top1_agreement)
        return best, (f"no integer file reached the {results[best].agreement_target} agreement target; delivering "
                      f"{best}, which passed its gate with the highest agreement ({results[best].top1_agreement:.4f})")
    fallback = next((v for v in ordered if not is_integer_variant(v) and results[v].passed), None)
    why = "; ".join(f"{v}: " + "; ".join(results[v].failures) for v in integer) or "no integer file was exported"
    return fallback, (f"no integer file passed its gate ({why})"
                      + (f"; delivering {fallback}" if fallback else ": nothing delivered"))
