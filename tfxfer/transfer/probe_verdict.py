"""The probe's verdict from accuracies (private to tfxfer.transfer; `tfxfer.transfer.probe` re-exports it).

A difference in accuracy counts only when the test set can resolve it. Its noise is two standard
errors of the difference (Agresti-Caffo: one pseudo-success and one pseudo-failure added to each
accuracy, so the error never collapses to 0 at accuracy 0 or 1, and a handful of test examples
never decides anything), expressed on the raw accuracy difference. With ``d`` the gain over the
best control, ``noise`` that error and ``margin`` the smallest gain that counts:

* a win needs ``d >= max(margin, noise)`` (the old rule, with the non-collapsing error);
* a loss (``negative_transfer``) needs ``d <= -max(margin, noise)``;
* "no gain" (``no_clear_gain``, or ``transfer_does_not_pay`` after a fine-tune check that did not
  do better) needs the data to rule out a gain of the margin: ``d + noise < margin``;
* anything else is ``inconclusive``: the report says why, on how many test examples, and about how
  many would decide it. A fine-tune that beats the control, even by less than the noise, is never
  ``transfer_does_not_pay``: the verdict is then ``inconclusive`` and the recommendation is to
  fine-tune.

Example:
    >>> from tfxfer.transfer import verdict_from_accuracies
    >>> report = verdict_from_accuracies(1.0, {"random_weights": 0.0}, num_test=2)
    >>> report.verdict  # 2 test examples decide nothing
    'inconclusive'
"""

from __future__ import annotations

import dataclasses
import math

from tfxfer.errors import ArgumentTypeError
from tfxfer.utils.validate import check_float, check_int

VERDICTS = {
    "transfer_helps": "frozen pretrained features beat every control: fine-tune from this backbone",
    "no_clear_gain": "frozen pretrained features are no better than the control (a linear probe); fine-tuning "
                     "was not checked, and it can still win",
    "negative_transfer": "frozen pretrained features are worse than the control (a linear probe); fine-tuning "
                         "was not checked, and it can still win",
    "fine_tuning_wins": "frozen features do not beat the control, but a short fine-tune does: fine-tune this "
                        "backbone (its features need adapting; transfer still pays)",
    "transfer_does_not_pay": "neither the frozen features nor a short fine-tune beat the control: transfer from "
                             "this backbone does not pay on this data",
    "inconclusive": "the test examples are too few to tell the backbone and the control apart (or the "
                    "backbone's lead is under the margin): this probe decides nothing",
}

#: What to do, per verdict (``inconclusive`` depends on who leads: see `ProbeReport.recommendation`).
RECOMMENDATIONS = {
    "transfer_helps": "fine-tune",
    "fine_tuning_wins": "fine-tune",
    "no_clear_gain": "check fine-tuning before deciding",
    "negative_transfer": "check fine-tuning before deciding",
    "transfer_does_not_pay": "use the control or another backbone",
    "inconclusive": "probe on more test examples before deciding; do not drop the backbone yet",
}
LEADS_FINE_TUNED = "fine-tune (the short fine-tune leads the control, not decisively)"
LEADS_FROZEN = ("keep the backbone (its frozen features lead the control, not decisively); probe on more test "
                "examples to decide")

CHECK_FINE_TUNING = (
    "Before dropping this backbone, check fine-tuning: frozen features can lose where a fine-tuned "
    "backbone wins (probe_backbone(..., fine_tune_epochs=2), probe_text(..., fine_tune_epochs=2, "
    "make_encoder=...)).")
FINE_TUNE = ("Fine-tune it: train the head, then unfreeze the backbone top-down at a low learning rate "
             "(tfxfer.fine_tune, or a recipe with train.epochs > 0); frozen-feature pipelines "
             "(cached features, linear probes, k-NN) will under-sell it.")

REMEDIES = (
    "Unfreeze more of the backbone and fine-tune deeper at a low learning rate "
    "(tfxfer.freezing.unfreeze(model, fraction=0.5) or fine_tune(..., with more stages)).",
    "Try another backbone, closer to your domain or at a higher input resolution (tfxfer rank).",
    "Check the input pipeline: preprocessing mode, channel order, grayscale vs RGB and input size "
    "must match what the backbone was trained on.",
    "Adapt to the domain: continue pretraining on unlabelled in-domain images (self-supervised), "
    "or, with enough labels, train from scratch and keep the control as the baseline.",
)

#: The largest test-set size `examples_needed` reports (beyond it: None, "no practical size").
MAX_NEEDED = 10**8


@dataclasses.dataclass
class ProbeReport:
    """Linear-probe accuracies, the verdict and remedies.

    ``detail`` says what decided the verdict and, when it is ``inconclusive``, how many test
    examples the difference rests on and about how many would decide it (``examples_needed``,
    None where no sample size would).
    """

    pretrained_accuracy: float
    controls: dict
    chance_accuracy: float
    gain: float
    threshold: float
    verdict: str
    remedies: list
    num_train: int
    num_test: int
    fine_tuned_accuracy: float | None = None
    fine_tune_gain: float | None = None
    detail: str = ""
    examples_needed: int | None = None

    @property
    def best_control(self) -> str:
        return max(self.controls, key=self.controls.get)

    @property
    def recommendation(self) -> str:
        """What to do: "fine-tune", "check fine-tuning before deciding", "use the control or another
        backbone", or, when ``inconclusive``, fine-tune if the backbone leads (never the control), else
        probe on more test examples."""
        if self.verdict != "inconclusive":
            return RECOMMENDATIONS[self.verdict]
        best = max(self.controls.values())
        if self.fine_tuned_accuracy is not None and self.fine_tuned_accuracy > best:
            return LEADS_FINE_TUNED
        if self.pretrained_accuracy > best:
            return LEADS_FROZEN
        return RECOMMENDATIONS["inconclusive"]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"best_control": self.best_control, "summary": VERDICTS[self.verdict],
                                           "recommendation": self.recommendation}

    def to_markdown(self) -> str:
        lines = ["| features | linear-probe accuracy |", "|---|---:|",
                 f"| pretrained | {self.pretrained_accuracy:.3f} |"]
        lines += [f"| control: {name} | {acc:.3f} |" for name, acc in self.controls.items()]
        if self.fine_tuned_accuracy is not None:
            lines.append(f"| pretrained, short fine-tune | {self.fine_tuned_accuracy:.3f} |")
        lines += [f"| chance (majority class) | {self.chance_accuracy:.3f} |", "",
                  f"**{self.verdict}**: {VERDICTS[self.verdict]} (gain {self.gain:+.3f} over "
                  f"{self.best_control}; threshold {self.threshold:.3f}; {self.num_train} train / "
                  f"{self.num_test} test examples). Recommendation: {self.recommendation}."]
        if self.detail:
            lines += ["", self.detail]
        if self.remedies:
            lines += ["", "Remedies:", *[f"- {r}" for r in self.remedies]]
        return "\n".join(lines)


def _noise(a: float, b: float, num_test: int) -> float:
    """Two Agresti-Caffo standard errors of ``a - b`` (accuracies on ``num_test`` examples each), on the
    raw difference's scale: never 0, even at accuracy 0 or 1."""
    n = num_test
    pa, pb = (a * n + 1) / (n + 2), (b * n + 1) / (n + 2)
    se = math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / (n + 2))
    return 2.0 * se * (n + 2) / n


def _threshold(a: float, b: float, num_test: int, margin: float) -> float:
    """The smallest difference ``a - b`` that counts: ``max(margin, two standard errors)``."""
    return float(max(margin, _noise(a, b, num_test)))


def examples_needed(a: float, b: float, num_test: int, target: float) -> int | None:
    """About how many test examples make the noise of ``a - b`` (same accuracies) at most ``target``;
    None where ``target <= 0`` or it would take more than `MAX_NEEDED`.

    Example:
        >>> examples_needed(0.85, 0.80, 200, 0.05)
        465
    """
    if target <= 0 or _noise(a, b, MAX_NEEDED) > target:
        return None
    low, high = num_test, MAX_NEEDED
    if _noise(a, b, low) <= target:
        return low
    while high - low > 1:  # the noise shrinks as the test set grows: bisect
        mid = (low + high) // 2
        low, high = (low, mid) if _noise(a, b, mid) <= target else (mid, high)
    return high


def _compare(ours: float, best: float, num_test: int, margin: float):
    """``(gain, threshold, noise, outcome)``: outcome "win", "loss", "tie" (the data rule out a gain
    of the margin) or "open" (they do not)."""
    gain, noise = float(ours - best), _noise(ours, best, num_test)
    threshold = float(max(margin, noise))
    if gain >= threshold:
        return gain, threshold, noise, "win"
    if gain <= -threshold:
        return gain, threshold, noise, "loss"
    return gain, threshold, noise, ("tie" if gain + noise < margin else "open")


def _open_detail(what: str, ours: float, best: float, gain: float, noise: float, num_test: int, margin: float,
                 num_train: int):
    """The sentence for an undecided comparison, and the test-set size that would decide it."""
    if margin <= gain < noise:
        target, decides = gain, f"make a {gain:+.3f} gain significant"
    else:
        target, decides = margin - gain, f"tell whether it reaches the margin {margin:.3f}"
    needed = examples_needed(ours, best, num_test, target)
    text = (f"Inconclusive: {what} {gain:+.3f} over the best control on {num_test} test examples, within the "
            f"noise (two standard errors: {noise:.3f}).")
    if needed is None:
        text += " No practical number of test examples would decide it."
    else:
        total = "" if not num_train else (f" (about {math.ceil(needed * (num_train + num_test) / num_test)} "
                                          "examples in all at this train/test split)")
        text += f" About {needed} test examples{total} would {decides}."
    return text, needed


def verdict_from_accuracies(pretrained: float, controls: dict, *, num_test: int, num_train: int = 0,
                            chance: float = 0.0, margin: float = 0.02, fine_tuned: float | None = None) -> ProbeReport:
    """The verdict: compare ``pretrained`` accuracy with the best of ``controls`` (name -> accuracy).

    A gain counts when it reaches ``max(margin, 2 * standard error of the difference)``; the error
    is Agresti-Caffo's (never 0, so a few test examples never decide anything). When neither a win
    nor a loss is resolved and the test set cannot rule out a gain of ``margin`` either, the
    verdict is ``inconclusive``, with the number of test examples that would decide it
    (``report.detail``, ``report.examples_needed``).

    ``fine_tuned`` is the accuracy of a short fine-tune of the pretrained backbone on the same split
    (None: not checked). When the frozen features do not win it decides: ``fine_tuning_wins`` (its
    gain counts), ``transfer_does_not_pay`` (it is no better than the control and the test set
    rules out a gain of the margin) or ``inconclusive``, whose recommendation is to fine-tune when
    the fine-tune leads the control at all.

    Example:
        >>> from tfxfer.transfer import verdict_from_accuracies
        >>> verdict_from_accuracies(0.62, {"random_weights": 0.71}, num_test=500).verdict
        'negative_transfer'
        >>> report = verdict_from_accuracies(0.70, {"tfidf": 0.71}, num_test=1000, fine_tuned=0.79)
        >>> report.verdict, report.recommendation
        ('fine_tuning_wins', 'fine-tune')
        >>> report = verdict_from_accuracies(0.80, {"tfidf": 0.80}, num_test=200, fine_tuned=0.85)
        >>> report.verdict, report.recommendation, report.examples_needed
        ('inconclusive', 'fine-tune (the short fine-tune leads the control, not decisively)', 465)
    """
    if not isinstance(controls, dict) or not controls:
        raise ArgumentTypeError("controls", controls, "a non-empty dict of control name -> accuracy")
    pretrained = check_float("pretrained", pretrained, low=0, high=1)
    for name, value in controls.items():
        check_float(f"controls[{name!r}]", value, low=0, high=1)
    margin = check_float("margin", margin, low=0, high=1, high_open=True)
    num_test = check_int("num_test", num_test, low=1)
    num_train = check_int("num_train", num_train, low=0)
    fine_tuned = check_float("fine_tuned", fine_tuned, low=0, high=1, allow_none=True)
    chance = check_float("chance", chance, low=0, high=1)
    best = float(max(controls.values()))
    gain, threshold, noise, outcome = _compare(pretrained, best, num_test, margin)
    fine_tune_gain, detail, needed = None, "", None
    if outcome == "win":
        verdict, remedies = "transfer_helps", []
    elif fine_tuned is not None:
        fine_tune_gain, _, ft_noise, ft_outcome = _compare(fine_tuned, best, num_test, margin)
        if ft_outcome == "win":
            verdict, remedies = "fine_tuning_wins", [FINE_TUNE]
        elif fine_tune_gain <= 0 and gain <= 0 and ft_outcome in ("loss", "tie"):
            verdict, remedies = "transfer_does_not_pay", list(REMEDIES[1:])
        else:
            verdict = "inconclusive"
            remedies = [FINE_TUNE] if fine_tuned > best or pretrained > best else list(REMEDIES[1:])
            if ft_outcome == "open":
                detail, needed = _open_detail("the short fine-tune gains", fine_tuned, best, fine_tune_gain,
                                              ft_noise, num_test, margin, num_train)
            elif fine_tune_gain > 0:
                detail = (f"Inconclusive: the short fine-tune gains {fine_tune_gain:+.3f} over the best control on "
                          f"{num_test} test examples, less than the margin {margin:.3f}, but it leads: fine-tune "
                          "if a gain that size is worth it.")
            else:  # the fine-tune is no better, the frozen features lead (not decisively)
                detail = (f"Inconclusive: the short fine-tune does not beat the best control ({fine_tune_gain:+.3f}) "
                          f"but the frozen features lead it by {gain:+.3f} on {num_test} test examples, not "
                          "decisively.")
    elif outcome == "loss":
        verdict, remedies = "negative_transfer", [CHECK_FINE_TUNING, *REMEDIES]
    elif outcome == "tie":
        verdict, remedies = "no_clear_gain", [CHECK_FINE_TUNING, *REMEDIES]
    else:
        verdict = "inconclusive"
        detail, needed = _open_detail("the frozen features gain", pretrained, best, gain, noise, num_test, margin,
                                      num_train)
        remedies = [CHECK_FINE_TUNING, *REMEDIES]
    return ProbeReport(pretrained_accuracy=pretrained, controls={k: float(v) for k, v in controls.items()},
                       chance_accuracy=float(chance), gain=gain, threshold=threshold, verdict=verdict,
                       remedies=remedies, num_train=num_train, num_test=num_test,
                       fine_tuned_accuracy=fine_tuned, fine_tune_gain=fine_tune_gain, detail=detail,
                       examples_needed=needed)
