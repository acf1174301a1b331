"""How ``tfxfer evaluate --groups COLUMN`` and ``--target DATA`` print their records (the data they
read comes from `tfxfer.recipes.audit_data`).

Example:
    >>> print(shift_lines({"verdict": "No shift detected: p=0.4 >= 0.01 (...).", "tests": [],
    ...                    "per_class": [], "notes": []}))
    Domain shift (evaluation data vs --target):
      No shift detected: p=0.4 >= 0.01 (...).
"""

from __future__ import annotations


# -- printing ----------------------------------------------------------------------------------------
def group_lines(record: dict) -> str:
    """A ``groups.json`` record as the table ``tfxfer evaluate --groups`` prints."""
    metrics = list(record["metrics"])
    level = record.get("confidence_level") or 0.95
    lines = [f"Bias audit by {record['column']} ({len(record['groups'])} groups; {level:.0%} bootstrap intervals, "
             f"{record.get('n_bootstrap')} resamples):"]
    width = max([len("group"), *(len(str(r["group"])) for r in record["rows"])])
    lines.append(f"  {'group':<{width}} {'n':>6}  " + "  ".join(f"{m:<21}" for m in metrics))

    def cell(row, m):
        v, lo, hi = row.get(m), row.get(f"{m}_low"), row.get(f"{m}_high")
        if v is None:
            return "n/a"
        return f"{v:.3f}" + ("" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]")

    for row in record["rows"]:
        lines.append(f"  {str(row['group']):<{width}} {row['n']:>6}  " + "  ".join(f"{cell(row, m):<21}"
                                                                              for m in metrics))
    for metric, g in record.get("gaps", {}).items():
        if g.get("value") is None:
            continue
        interval = "" if g.get("low") is None else f" [{g['low']:.3f}, {g['high']:.3f}]"
        lines.append(f"  worst-group gap, {metric}: {g['value']:.3f}{interval} (worst {g['worst_group']}, "
                     f"best {g['best_group']})")
    lines += [f"  note: {n}" for n in record.get("notes") or []]
    return "\n".join(lines)


def shift_lines(record: dict) -> str:
    """A ``shift.json`` record as ``tfxfer evaluate --target`` prints it: verdict, target files skipped,
    tests, per-class confidence, expected accuracy."""
    lines = ["Domain shift (evaluation data vs --target):", f"  {record['verdict']}"]
    if record.get("target_skipped"):
        reasons = ", ".join(f"{n} {r}" for r, n in (record.get("target_skip_reasons") or {}).items())
        lines.append(f"  target: {record['target_skipped']} file(s) skipped" + (f" ({reasons})" if reasons else ""))
    for t in record.get("tests") or []:
        label = "domain-classifier AUC" if t["name"] == "classifier" else "MMD²"
        lines.append(f"  {label} {t['statistic']:.4g}: permutation p-value {t['p_value']:.4g} "
                     f"({t['permutations']} permutations, n={t['n_source']}+{t['n_target']})")
    if record.get("expected_target_accuracy") is not None:
        measured = record.get("target_accuracy")
        lines.append(f"  accuracy: {record['source_accuracy']:.4f} on the evaluation data; expected on the target "
                     f"{record['expected_target_accuracy']:.4f} (ATC estimate)"
                     + (f"; measured {measured:.4f}" if measured is not None else ""))
    for c in record.get("per_class") or []:
        lines.append(f"  predicted {c.get('name', c['label'])}: confidence {c['source_confidence']:.3f} -> "
                     f"{c['target_confidence']:.3f} (n={c['n_source']} -> {c['n_target']})")
    lines += [f"  note: {n}" for n in record.get("notes") or []]
    return "\n".join(lines)
