"""Report figures with matplotlib (Agg backend): each function returns PNG bytes.

Example:
    >>> png = class_counts_png({"train": {"cat": 30, "dog": 10}, "test": {"cat": 5, "dog": 2}})
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io

import numpy as np

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def class_counts_png(class_counts: dict, class_names=None) -> bytes:
    """Grouped bars: examples per class in each split (in ``class_names`` order if given)."""
    plt = _plt()
    order = [s for s in ("train", "val", "test") if s in class_counts]
    splits = order + [s for s in class_counts if s not in order]
    names = list(class_names or (next(iter(class_counts.values())).keys() if class_counts else []))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 2.5), 3.2))
    width = 0.8 / max(1, len(splits))
    x = np.arange(len(names))
    for i, split in enumerate(splits):
        values = [class_counts[split].get(n, 0) for n in names]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=split, color=_COLORS[i % len(_COLORS)])
    ax.set_xticks(x, names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("examples")
    ax.set_title("Examples per class")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def training_curves_png(history: dict, stages: list, lr_steps: list) -> bytes:
    """Loss and accuracy per epoch (train / val) with stage boundaries, and the learning rate."""
    plt = _plt()
    metrics = [m for m in ("loss", "accuracy") if m in history]
    extra = [k for k in history if not k.startswith("val_") and k not in ("loss", "accuracy", "learning_rate")]
    metrics += extra[:1]
    rows = len(metrics) + (1 if lr_steps else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(7.5, 2.4 * rows), sharex=True, squeeze=False)
    axes = axes[:, 0]
    def clean(values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    for ax, metric in zip(axes, metrics):
        values = clean(history[metric])
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, "o-", label=f"train {metric}", color=_COLORS[0], ms=3)
        if f"val_{metric}" in history:
            val = clean(history[f"val_{metric}"])
            ax.plot(np.arange(1, len(val) + 1), val, "s--", label=f"val {metric}", color=_COLORS[1], ms=3)
        ax.set_ylabel(metric)
        ax.legend(frameon=False, fontsize=8)
        ax.grid(alpha=0.3)
    if lr_steps:
        ax = axes[-1]
        ax.plot([s["epoch"] for s in lr_steps], [s["lr"] for s in lr_steps], color=_COLORS[2])
        ax.set_ylabel("learning rate")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes:
        for i, stage in enumerate(stages):
            if stage["epoch"] > 0:
                ax.axvline(stage["epoch"] + 0.5 if not lr_steps or ax is not axes[-1] else stage["epoch"],
                           color="#888", ls=":", lw=1)
    top = axes[0]
    for i, stage in enumerate(stages):  # short tags; the report's stage table spells them out
        x = stage["epoch"] + 0.5 if stage["epoch"] > 0 else 0.6
        top.annotate(f"S{i + 1}", xy=(x, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                     color="#555", va="bottom", xytext=(2, 2), textcoords="offset points")
    axes[-1].set_xlabel("epoch")
    return _png(fig)


def confusion_png(confusion, class_names) -> bytes:
    """Row-normalised confusion matrix with counts in each cell."""
    plt = _plt()
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    size = min(9.0, max(3.6, 0.55 * k + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_title("Confusion matrix")
    return _png(fig)


def reliability_png(bins: list, ece: float) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    width = bins[0]["hi"] - bins[0]["lo"] if bins else 0.1
    bins = [b for b in bins if b["count"] and b["accuracy"] is not None and b["confidence"] is not None]
    centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
    acc = [b["accuracy"] for b in bins]
    conf = [b["confidence"] for b in bins]
    ax.bar(centres, acc, width=width * 0.95, color=_COLORS[0], alpha=0.8, label="accuracy")
    ax.bar(centres, np.array(conf) - np.array(acc), bottom=acc, width=width * 0.95, color=_COLORS[3], alpha=0.3,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {ece:.3f})")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return _png(fig)


def misclassified_png(thumbnails, items: list, *, columns: int = 8) -> bytes:
    """Grid of the most confident mistakes: thumbnail, true and predicted class."""
    plt = _plt()
    n = len(items)
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.45 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), items):
        image = np.asarray(thumbnails[item["thumbnail"]])
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image)
        confidence = "" if item.get("confidence") is None else f" {item['confidence']:.2f}"
        ax.set_title(f"true {item['true']}\npred {item['predicted']}{confidence}", fontsize=7)
    return _png(fig)


def export_png(rows: list) -> bytes:
    """Size and latency per exported variant (bars), gate verdict in the label."""
    plt = _plt()
    timed = any(r.get("latency_ms") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(7.5 if timed else 4.0, 2.6), squeeze=False)
    axes = axes[0]
    names = [f"{r['variant']}\n({r['gate']})" for r in rows]
    axes[0].bar(names, [r["size_kib"] for r in rows], color=_COLORS[0])
    axes[0].set_ylabel("size (KiB)")
    if timed:
        axes[1].bar(names, [r["latency_ms"] or 0.0 for r in rows], color=_COLORS[1])
        axes[1].set_ylabel("latency, 1 thread (ms)")
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
