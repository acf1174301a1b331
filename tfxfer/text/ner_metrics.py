"""Entity-level precision, recall and F1, computed as seqeval does (no seqeval dependency).

An entity counts as correct only when its type, first word and last word all match. "default"
mode reads chunks like seqeval's default mode / conlleval (lenient: ``I-X`` after ``O`` starts an
entity); "strict" mode keeps only well-formed chunks of the scheme (seqeval ``mode="strict"``).
Micro averages pool every entity; macro averages the per-type scores; weighted averages weight
them by support. Zero denominators give 0, as seqeval's default does.

Example:
    >>> from tfxfer.text.ner_metrics import entity_scores
    >>> truth = [["B-PER", "I-PER", "O", "B-LOC"]]
    >>> guess = [["B-PER", "I-PER", "O", "B-ORG"]]
    >>> s = entity_scores(truth, guess)
    >>> round(s.precision, 3), round(s.recall, 3), round(s.f1, 3), s.per_type["PER"]["f1"]
    (0.5, 0.5, 0.5, 1.0)
"""

from __future__ import annotations

import dataclasses

from tfxfer.errors import ArgumentError, DataError
from tfxfer.text.tagging import check_scheme, chunks, strict_chunks


def _prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    p = correct / predicted if predicted else 0.0
    r = correct / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclasses.dataclass
class EntityScores:
    """Micro precision / recall / F1, per-type scores, and macro / weighted averages."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int
    per_type: dict
    macro: dict
    weighted: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self, digits: int = 4) -> str:
        """A seqeval-style classification report."""
        width = max([len(t) for t in self.per_type] + [12])
        head = f"{'':<{width}}  precision     recall   f1-score    support"
        lines = [head, ""]
        for kind, s in sorted(self.per_type.items()):
            lines.append(f"{kind:<{width}}  {s['precision']:>9.{digits}f}  {s['recall']:>9.{digits}f}  "
                         f"{s['f1']:>9.{digits}f}  {s['support']:>9}")
        lines.append("")
        for name, s in (("micro avg", {"precision": self.precision, "recall": self.recall, "f1": self.f1}),
                        ("macro avg", self.macro), ("weighted avg", self.weighted)):
            lines.append(f"{name:<{width}}  {s['precision']:>9.{digits}f}  {s['recall']:>9.{digits}f}  "
                         f"{s['f1']:>9.{digits}f}  {self.support:>9}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def entity_scores(y_true, y_pred, *, mode: str = "default", scheme: str = "BIO") -> EntityScores:
    """Entity-level scores of predicted tag sequences against true ones.

    Args:
        y_true, y_pred: lists of tag-string lists (one per sentence, equal lengths).
        mode: "default" (seqeval default / conlleval chunking) or "strict" (well-formed chunks of
            ``scheme`` only).
        scheme: "BIO" or "BIOES" (used by "strict").
    """
    check_scheme(scheme)
    if mode not in ("default", "strict"):
        raise ArgumentError("mode", mode, "must be 'default' or 'strict'")
    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} true sentences but {len(y_pred)} predicted")
    true_set, pred_set = set(), set()
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise DataError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted")
        find = chunks if mode == "default" else (lambda tags: strict_chunks(tags, scheme=scheme))
        true_set.update((i, *c) for c in find(list(t)))
        pred_set.update((i, *c) for c in find(list(p)))
    correct = true_set & pred_set
    per_type = {}
    for kind in sorted({c[1] for c in true_set | pred_set}):
        n_true = sum(1 for c in true_set if c[1] == kind)
        n_pred = sum(1 for c in pred_set if c[1] == kind)
        n_ok = sum(1 for c in correct if c[1] == kind)
        p, r, f = _prf(n_ok, n_pred, n_true)
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "support": n_true}
    p, r, f = _prf(len(correct), len(pred_set), len(true_set))
    macro = {k: (sum(s[k] for s in per_type.values()) / len(per_type) if per_type else 0.0)
             for k in ("precision", "recall", "f1")}
    total = sum(s["support"] for s in per_type.values())
    weighted = {k: (sum(s[k] * s["support"] for s in per_type.values()) / total if total else 0.0)
                for k in ("precision", "recall", "f1")}
    return EntityScores(precision=p, recall=r, f1=f, support=len(true_set), predicted=len(pred_set),
                        correct=len(correct), per_type=per_type, macro=macro, weighted=weighted)
