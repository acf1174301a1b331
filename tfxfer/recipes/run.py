"""`run_pipeline`: plan the stages of a recipe, run them in a run directory, write the manifest
and the report, and return where everything is.

Example (tiny, random weights; takes a minute on 2 CPU cores):
    >>> from tfxfer.recipes import load_config, run_pipeline          # doctest: +SKIP
    >>> cfg = load_config("pipelines/quick.yaml", overrides=["model.weights=null",
    ...                   "model.input_size=[32, 32]", "data.max_train=64", "data.max_eval=32",
    ...                   "train.epochs=1", "train.head_epochs=1"])  # doctest: +SKIP
    >>> result = run_pipeline(cfg, out_dir="runs/tiny", verbosity=0)   # doctest: +SKIP
    >>> result.report_html, result.tflite                                # doctest: +SKIP
    ('runs/tiny/report/report.html', 'runs/tiny/export/quick_int8.tflite')
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time

from tfxfer.errors import ConfigError, GateError, UnknownNameError
from tfxfer.recipes.catalog import check_backbone
from tfxfer.recipes.causal_lm_stages import causal_lm_stages
from tfxfer.recipes.config import RunConfig, config_to_yaml
from tfxfer.recipes.console import Console
from tfxfer.recipes.context import RunContext
from tfxfer.recipes.edge_stages import distill_available, edge_stages, quantize_available
from tfxfer.recipes.export_stages import export_stages
from tfxfer.recipes.image_stages import evaluate_stage, image_stages
from tfxfer.recipes.manifest import build_manifest, write_manifest
from tfxfer.recipes.ner_stages import ner_stages
from tfxfer.recipes.recipe_yaml import parse_yaml, read_recipe_file
from tfxfer.recipes.report_stage import report_stage
from tfxfer.recipes.run_folder import check_run_folder
from tfxfer.recipes.runner import Runner, Stage
from tfxfer.recipes.sources import resolve_source
from tfxfer.recipes.text_stages import check_text_config, text_stages
from tfxfer.utils.atomic import atomic_write_text
from tfxfer.utils.lock import FolderLock


HEADLINE_METRICS = ("accuracy", "macro_f1", "entity_f1", "ece")


@dataclasses.dataclass
class RunResult:
    """Where a finished run put its outputs (paths are absolute), its metrics and its wall time.

    ``chance`` is `tfxfer.metrics.chance_check` of the evaluation (``flagged`` True when the model is
    no better than chance or predicts one class for everything); None when the run has no
    classification metrics (an NER run). ``flagged`` is its verdict.
    """

    run_dir: str
    manifest: str
    report_html: str | None
    report_md: str | None
    tflite: str | None
    gate_passed: bool | None
    metrics: dict
    stages: dict
    wall_s: float
    chance: dict | None = None

    @property
    def flagged(self) -> bool:
        """True when the evaluated model is no better than chance (`tfxfer.metrics.chance_check`)."""
        return bool(self.chance and self.chance.get("flagged"))

    def headline(self) -> str:
        """The wall time and the main metrics in one line.

        Example:
            >>> RunResult(run_dir="r", manifest="r/manifest.json", report_html=None, report_md=None,
            ...           tflite=None, gate_passed=None, metrics={"accuracy": 0.91, "ece": 0.03},
            ...           stages={}, wall_s=42.0).headline()
            'Done in 42 s: accuracy 0.9100, ece 0.0300'
        """
        wall = f"{self.wall_s / 60:.1f} min" if self.wall_s >= 90 else f"{self.wall_s:.0f} s"
        metrics = ", ".join(f"{k} {self.metrics[k]:.4f}" for k in HEADLINE_METRICS if k in self.metrics)
        return f"Done in {wall}: {metrics}"


def _not_available(what: str, module: str, key: str):
    raise ConfigError(f"`{key}: true` needs {what}, which is not available yet in this tfxfer ({module} has no "
                      f"usable API); set {key}=false")


def _check_optional(cfg: RunConfig) -> None:
    if cfg.distill.enabled and not distill_available():
        _not_available("distillation", "tfxfer.distill", "distill.enabled")
    if cfg.quantize.enabled and not quantize_available():
        _not_available("quantization-aware training", "tfxfer.quantize", "quantize.enabled")


def plan_stages(cfg: RunConfig) -> list[Stage]:
    """The stages a recipe runs, in order; optional ones only when enabled."""
    if cfg.task == "causal_lm":
        return causal_lm_stages(cfg)  # its own report stage last
    _check_optional(cfg)
    if cfg.task == "image_classification":
        stages = image_stages(cfg)
        if cfg.distill.enabled or cfg.quantize.enabled:
            stages += edge_stages(cfg)
        stages += [evaluate_stage(), *export_stages()]
    elif cfg.task == "token_classification":
        check_text_config(cfg)
        stages = ner_stages(cfg)
    else:
        stages = text_stages(cfg)
    return stages + [report_stage()]


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def _check_resume(cfg: RunConfig, run_dir: str) -> None:
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ConfigError(f"--resume: no run to resume in {run_dir} (no config.yaml); drop --resume to start one")
    saved = parse_yaml(read_recipe_file(path), where=path)
    changed = _diff(saved, cfg.to_dict())
    if changed:
        raise ConfigError(f"--resume: the recipe differs from the interrupted run in {', '.join(changed[:5])}; "
                          "drop --resume to re-run the stages those keys affect")


def _worker_index(cfg: RunConfig) -> int:
    """This process's index in a multi-worker cluster (``TF_CONFIG``), 0 for the chief or no cluster."""
    if cfg.train.strategy != "multi_worker_mirrored" or not os.environ.get("TF_CONFIG"):
        return 0
    import json

    try:
        config = json.loads(os.environ["TF_CONFIG"])
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        index = int(task.get("index", 0) or 0)
    except (ValueError, AttributeError, TypeError):
        return 0  # get_strategy reports a malformed TF_CONFIG with a clear message
    if task.get("type") == "chief":
        return 0
    return index + 1 if "chief" in cluster else index


def run_pipeline(cfg: RunConfig, *, out_dir=None, resume: bool = False, force: bool = False, verbosity: int = 1,
                 stream=None, command=None) -> RunResult:
    """Run recipe ``cfg`` in ``out_dir`` (default ``runs/<name>``).

    Stages whose inputs are unchanged since the last run in ``out_dir`` are skipped; ``resume``
    additionally requires that the directory holds a run of exactly this configuration (an
    interrupted one continues after its last finished stage); ``force`` re-runs every stage.
    ``out_dir`` must be absent, empty or an earlier run's folder (`check_run_folder`).

    Raises:
        ArgumentError: ``out_dir`` (``--out``) is a file, or a folder holding other files and no run.
        ConfigError: bad recipe values found while planning (unknown backbone, missing data...).
        GateError: an exported variant failed its verification gate (the report and manifest are
            written first, and show which check failed).
    """
    console = Console(verbosity=verbosity, stream=stream)
    run_dir = os.path.abspath(os.fspath(out_dir or os.path.join("runs", cfg.name)))
    check_run_folder(run_dir)  # never a home or project folder: a run replaces and removes files in it
    worker = _worker_index(cfg)
    if worker:  # multi-worker training: the chief owns the run folder, the others write beside it
        run_dir = os.path.join(run_dir, "workers", f"worker-{worker}")
    if cfg.train.deterministic:
        from tfxfer.reliability.determinism import enable_determinism  # TensorFlow: only when asked for

        console.detail(f"deterministic ops on: {enable_determinism(cfg.seed)}")
    strategy = None
    if cfg.train.strategy != "default":  # before any TensorFlow op: collective ops are set up at start-up
        from tfxfer.reliability import get_strategy  # TensorFlow: only when asked for

        strategy = get_strategy(cfg.train.strategy)
    stages = plan_stages(cfg)
    _validate_names(cfg)
    if resume:
        _check_resume(cfg, run_dir)
    os.makedirs(run_dir, exist_ok=True)
    with FolderLock(run_dir, command=command) as lock:  # a second run on this folder gets LockedError
        for note in lock.notes:
            console.info(f"note: {note}")
        if resume:
            _check_resume(cfg, run_dir)  # again, now that no other run can change it
        return _run_locked(cfg, stages, run_dir, console, strategy, force=force, command=command)


def _run_locked(cfg, stages, run_dir, console, strategy, *, force, command) -> RunResult:
    atomic_write_text(os.path.join(run_dir, "config.yaml"), config_to_yaml(cfg))
    ctx = RunContext(cfg, run_dir, console)
    ctx.remember("strategy", strategy)
    runner = Runner(ctx, force=force)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    model = cfg.causal_lm.model if cfg.task == "causal_lm" else cfg.model.backbone
    console.info(f"tfxfer run {cfg.name}: {cfg.task}, {model} on {cfg.data.source} -> {run_dir}")
    ctx.remember("manifest_info", {"started": started, "t0": t0, "command": command})
    # before any stage: a hard kill (kill -9, power loss) must not leave an earlier run's "ok" manifest,
    # with its gate and metrics, describing files this run has started to replace
    write_manifest(ctx, build_manifest(ctx, status="running", started=started, wall_s=0.0, command=command))
    try:
        for stage in stages:
            runner.execute(stage)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        write_manifest(ctx, build_manifest(ctx, status=status, started=started, wall_s=time.perf_counter() - t0,
                                           command=command, error=message))
        raise
    verify = ctx.outputs.get("verify", {})
    passed = verify.get("passed")
    manifest = build_manifest(ctx, status="ok" if passed is not False else "gate_failed", started=started,
                              wall_s=time.perf_counter() - t0, command=command)
    manifest_path = write_manifest(ctx, manifest)
    report = ctx.outputs.get("report", {})
    chance = _chance(ctx)
    if chance and chance["flagged"]:
        console.info(f"warning: the model is no better than chance: {'; '.join(chance['reasons'])}")
    result = RunResult(
        run_dir=run_dir, manifest=manifest_path,
        report_html=ctx.abs(report["html"]) if report.get("html") else None,
        report_md=ctx.abs(report["markdown"]) if report.get("markdown") else None,
        tflite=ctx.abs(verify["deliver"]) if verify.get("deliver") else None,
        gate_passed=passed, metrics=manifest["metrics"], stages=manifest["stages"], wall_s=manifest["wall_s"],
        chance=chance)
    if passed is False:
        error = GateError(f"verification gate failed for {', '.join(verify.get('failed', []))}; see the export "
                          f"table in {result.report_html}", report=verify)
        error.result = result  # the run's files exist (a fallback may be delivered): `tfxfer run --json` lists them
        raise error
    return result


def _chance(ctx) -> dict | None:
    """`tfxfer.metrics.chance_check` of the run's ``eval/metrics.json`` (None without one, or for NER)."""
    import json

    from tfxfer.metrics import metrics_chance_check

    path = ctx.path("eval", "metrics.json", mkdir=False)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return metrics_chance_check(json.load(f))
    except (OSError, ValueError):
        return None


def _validate_names(cfg: RunConfig) -> None:
    """Names that need the catalog (checked before any stage runs)."""
    if cfg.task == "causal_lm":
        return  # causal_lm_stages resolved its corpus while planning
    resolve_source(cfg)
    if cfg.task == "image_classification":
        try:
            check_backbone(cfg.model.backbone)
        except UnknownNameError as exc:
            raise ConfigError(f"`model.backbone`: {exc}") from None
        if cfg.distill.enabled:
            try:
                check_backbone(cfg.distill.teacher)
            except UnknownNameError as exc:
                raise ConfigError(f"`distill.teacher`: {exc}") from None
