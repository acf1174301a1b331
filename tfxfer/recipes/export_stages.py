"""Export and verify stages of every recipe (image and text), through `tfxfer.export`'s one workflow.

* ``export``: `tfxfer.export.convert_variants` (pre-flight, then every variant; image int8 calibrated
  on un-augmented training images; text files get their tokenizer files).
* ``verify``: `tfxfer.export.gate_variants` on the held-out split (the gate), `benchmark_variants`
  over all files side by side, `export_rows` / `write_verdicts`, with ``export.saved_model`` a
  SavedModel ``export/serving/`` (`write_serving`: `export_serving` in a staging folder swapped in
  whole; written when asked, whatever the files did). The delivered file follows the export chain
  (`tfxfer.export.delivery.choose_delivery` along `DELIVERY_CHAIN`): for ``deliver: int8``, the first
  integer file that passed its gate and reached the 98 % agreement target (quantization-aware
  ``int8_qat`` from the quantize stage, then post-training ``int8``); when none did, the selective
  remedy (`selective_remedy`: uint8 raw-pixel input, the most harmful tensors in float, searched on
  the validation split) is made and gated on all held-out images as ``int8_selective`` (none when the
  search keeps nothing in float: that file would be post-training int8 again); then the
  passing integer file with the highest agreement, else the float file that passed, with the reason.

Both stages then remove the files their last finished run wrote and this one did not (a variant
dropped from ``export.variants``, a remedy file not made again, the ``export/serving/`` folder of a
run that no longer asks for it): `tfxfer.recipes.export_files`.

`export_stages` builds the two stages for image recipes; text recipes bind `convert_stage` /
`gate_stage` to their held-out texts (`tfxfer.recipes.text_export_stages`).
"""

from __future__ import annotations

import os

from tfxfer.recipes.export_files import export_stage_files, remove_stale, stage_folders, verify_stage_files
from tfxfer.recipes.runner import Stage
from tfxfer.utils.atomic import atomic_write_json
from tfxfer.utils.humanize import format_bytes

MODEL_STAGES = ("finetune", "distill", "quantize")


def gate_thresholds(cfg) -> dict:
    """``{variant: limits}`` from ``export.thresholds``; the QAT and selective files (``int8_qat``,
    ``int8_selective``) get the int8 limits, the weight_only remedy the dynamic file's unless
    ``export.thresholds.weight_only`` sets its own (a tightened dynamic gate binds its remedy too)."""
    from tfxfer.export.gate import resolve_thresholds

    limits = resolve_thresholds({v: dict(t) for v, t in cfg.export.thresholds.items()})
    weight_only = limits["weight_only"] if "weight_only" in cfg.export.thresholds else limits["dynamic"]
    return {**limits, "int8_qat": limits["int8"], "int8_selective": limits["int8"], "weight_only": weight_only}


def qat_export_entry(ctx) -> dict:
    """The QAT file as an extra row for the verify stage (``{"int8_qat": {...}}``), or {}."""
    out = ctx.outputs.get("quantize")
    if not out:
        return {}
    return {"int8_qat": {"path": out["tflite"], "size_bytes": out["size_bytes"], "sidecar": out["sidecar"]}}


def convert_stage(ctx, *, class_names, representative_data=None):
    """Convert ``ctx.model()`` to every ``export.variants`` file under ``export/``."""
    from tfxfer.export import convert_variants

    cfg = ctx.cfg
    bar = ctx.console.counter(desc="convert" + (" (int8: calibrate)" if representative_data is not None else ""),
                              unit="variant")
    try:
        exported = convert_variants(ctx.model(), ctx.path("export"), variants=cfg.export.variants,
                                    representative_data=representative_data, class_names=class_names, name=cfg.name,
                                    num_calibration=cfg.export.num_calibration, seed=cfg.seed, progress=bar.update,
                                    calibration_record={"source": str(cfg.data.source), "split": "train",
                                                        "augmented": False})
    finally:
        bar.close()
    exports = {}
    for variant, result in exported.items():
        entry = {"path": ctx.rel(result.path), "size_bytes": result.size_bytes, "sidecar": ctx.rel(result.sidecar_path)}
        if hasattr(result, "input_dtype"):
            entry.update(input_dtype=result.input_dtype, calibration_samples=result.calibration_samples)
        if getattr(result, "vocab_path", None):
            entry["vocab"] = ctx.rel(result.vocab_path)
        exports[variant] = entry
        ctx.console.detail(f"{variant}: {format_bytes(result.size_bytes)}")
    out = {"exports": exports, "artefacts": [e["path"] for e in exports.values()]}
    remove_stale(ctx, "export", keep=export_stage_files(out, out["artefacts"]))  # a dropped variant's files
    return out


def selective_remedy(model, path, *, calibration, selection_data, eval_data, class_names, thresholds,
                     num_calibration: int, calibration_record: dict | None = None, seed: int = 0):
    """The export chain's next remedy when no full-integer file passed its gate and reached
    `tfxfer.export.gate.INT8_AGREEMENT_TARGET`: `tfxfer.quantize.selective_int8` (uint8 raw-pixel
    input, the most harmful tensors kept in float) searched on ``selection_data`` (the validation
    split), then gated like every other file on all of ``eval_data``.

    When the search keeps nothing in float (full int8 already reaches the target on ``selection_data``,
    though not on all of ``eval_data``), its file would be the post-training int8 file again: none is kept,
    and the summary says so (``"made": False`` and the ``"reason"``).

    Returns:
        ``(export, gate_result, summary)``: the `TFLiteExport`, its `VariantResult` on ``eval_data``
        (variant ``int8_selective``) and what the search did; ``(None, None, summary)`` when no file was made.
    """
    from tfxfer.export import verify
    from tfxfer.export.gate import INT8_AGREEMENT_TARGET
    from tfxfer.quantize import selective_int8

    result = selective_int8(model, path, representative_data=calibration, eval_data=selection_data,
                            thresholds=thresholds, num_calibration=num_calibration, class_names=class_names,
                            min_top1_agreement=INT8_AGREEMENT_TARGET, calibration_record=calibration_record,
                            raise_on_failure=False, seed=seed)
    full = result.cost.get("full_int8_path")
    if full and full != result.export.path:  # the post-training file again: the export stage has it
        for leftover in (full, os.path.splitext(full)[0] + ".json"):
            if os.path.exists(leftover):
                os.remove(leftover)
    summary = {"float_layers": result.float_layers, "float_nodes": len(result.float_nodes),
               "input": result.input, "search_examples": int(len(selection_data[1])),
               "search_attempts": result.attempts, "size_ratio_vs_full_int8": round(result.cost["size_ratio"], 4)}
    if not result.float_nodes:  # the search stopped at full int8: the same file as post-training int8
        for leftover in (result.export.path, result.export.sidecar_path):
            if leftover and os.path.exists(leftover):
                os.remove(leftover)
        first = result.attempts[0]
        if first["passed"] and first["top1_agreement"] >= INT8_AGREEMENT_TARGET:
            why = (f"full int8 already agrees {first['top1_agreement']:.4f} with the Keras model on the "
                   f"{summary['search_examples']} validation examples the search selects on (target "
                   f"{INT8_AGREEMENT_TARGET:g}), so no tensor kept in float can be chosen there")
        else:
            why = "the search found no tensor to keep in float"
        summary.update(made=False, reason=f"no selective file made: {why}; the post-training int8 file stands")
        return None, None, summary
    gate = verify(model, {"int8_selective": result.export}, eval_data, thresholds=thresholds,
                  class_names=class_names, raise_on_failure=False)
    return result.export, gate["int8_selective"], dict(summary, made=True)


def gate_stage(ctx, *, eval_data, class_names, saved_model: bool, remedy_data=None, weight_only_remedy=None):
    """Gate, benchmark and record every file of the export stage (and the QAT file, if any).

    ``remedy_data()``, if given, returns ``(calibration images, validation (images, labels))`` for the
    selective int8 remedy (`selective_remedy`), run when the recipe delivers int8 and no integer file
    passed its gate and reached the agreement target (`tfxfer.export.delivery.needs_remedy`).
    ``weight_only_remedy(path)``, if given (text models), writes the ``weight_only`` file (the dynamic
    file's int8 weights, float arithmetic) at ``path`` and returns its export; it runs when the recipe
    delivers ``dynamic`` and the dynamic file failed its gate, and the new file is gated like the others.
    """
    from tfxfer.export import gate_variants
    from tfxfer.export.delivery import needs_remedy

    cfg, model = ctx.cfg, ctx.model()
    exports = {**ctx.outputs["export"]["exports"], **qat_export_entry(ctx)}
    paths = {variant: ctx.abs(entry["path"]) for variant, entry in exports.items()}
    ctx.console.info(f"  verify {len(paths)} file(s) on the held-out split")
    thresholds = gate_thresholds(cfg)
    gate = gate_variants(model, paths, eval_data=eval_data, class_names=class_names, thresholds=thresholds)
    results, remedies = dict(gate.results), {}

    def keep(variant, export, result, summary, **entry):
        """A remedy file joins the table if it passed its gate; one that failed too is reported, not shipped
        (its file removed): the run's verdict stays that of its own files."""
        remedies[variant] = {**summary, "passed": result.passed, "top1_agreement": result.top1_agreement,
                             "failures": result.failures}
        if result.passed:
            exports[variant] = {"path": ctx.rel(export.path), "size_bytes": export.size_bytes,
                                "sidecar": ctx.rel(export.sidecar_path), **entry}
            paths[variant], results[variant] = export.path, result
            return
        ctx.console.info(f"  {variant} failed its gate too ({'; '.join(result.failures)}); not kept")
        for leftover in (export.files() if hasattr(export, "files") else (export.path, export.sidecar_path)):
            if leftover and os.path.exists(leftover):
                os.remove(leftover)

    if remedy_data is not None and "int8" in results and needs_remedy(results, cfg.export.deliver):
        calibration, selection = remedy_data()
        ctx.console.info(f"  no int8 file passed its gate with the agreement target: selective int8 (search on "
                         f"{len(selection[1])} validation images, then the gate on all held-out images)")
        export, result, summary = selective_remedy(
            model, ctx.path("export", f"{cfg.name}_int8_selective.tflite"), calibration=calibration,
            selection_data=selection, eval_data=eval_data, class_names=class_names, thresholds=thresholds,
            num_calibration=cfg.export.num_calibration, seed=cfg.seed,
            calibration_record={"source": str(cfg.data.source), "split": "train", "augmented": False})
        if export is None:
            remedies["int8_selective"] = summary
            ctx.console.info(f"  int8_selective: {summary['reason']}")
        else:
            keep("int8_selective", export, result, summary, input_dtype=export.input_dtype,
                 calibration_samples=export.calibration_samples)
    if weight_only_remedy is not None and cfg.export.deliver == "dynamic" and "dynamic" in results \
            and not results["dynamic"].passed:
        ctx.console.info(f"  dynamic failed its gate ({'; '.join(results['dynamic'].failures)}): weight_only "
                         "(the same int8 weights, float arithmetic), gated on the same held-out split")
        export = weight_only_remedy(ctx.path("export", f"{cfg.name}_weight_only.tflite"))
        result = gate_variants(model, {"weight_only": export.path}, eval_data=eval_data, class_names=class_names,
                               thresholds=thresholds).results["weight_only"]
        keep("weight_only", export, result, {"size_bytes": export.size_bytes})
    benches = benchmark_exports(ctx, paths)
    saved = None
    if saved_model:  # written when asked even if a quantized file failed: it checks itself against Keras
        saved = write_serving(ctx, model, class_names=class_names, eval_data=eval_data)
    out = record_gate(ctx, exports, results, benches, saved_model=saved)
    out["folders"] = [SERVING_DIR] if saved else []
    if remedies:
        out["remedy"] = remedies
        out["artefacts"] += [exports[v]["path"] for v in remedies if v in exports]
    export = ctx.outputs["export"]  # an earlier run's remedy file or serving folder this run did not make goes
    remove_stale(ctx, "verify", keep=verify_stage_files(out, out["artefacts"]) | stage_folders(out)
                 | export_stage_files(export, export.get("artefacts", [])))
    return out


#: The TF Serving model repository the verify stage writes (``<name>/1/`` and ``models.config``).
SERVING_DIR = "export/serving"


def write_serving(ctx, model, *, class_names, eval_data) -> str:
    """``export/serving/`` written whole in a staging folder (`export_serving`, version 1) and swapped in
    atomically (`tfxfer.utils.atomic.atomic_path`): a re-run replaces the earlier folder (no versions pile
    up; a reader sees the old folder or the new one); returns the SavedModel's path (``<name>/1``)."""
    from tfxfer.export import export_serving
    from tfxfer.utils.atomic import atomic_path

    folder = ctx.path(*SERVING_DIR.split("/"))
    with atomic_path(folder, directory=True) as staging:
        written = export_serving(model, staging, name=ctx.cfg.name, class_names=class_names, eval_data=eval_data,
                                 serving_base_path=folder).path
    return os.path.join(folder, os.path.relpath(written, staging))


def benchmark_exports(ctx, paths: dict) -> dict:
    """``{variant: BenchmarkResult}`` of ``{variant: path}`` timed side by side (`benchmark_variants`),
    or {} with ``export.benchmark: false``."""
    from tfxfer.export import benchmark_variants

    cfg = ctx.cfg
    if not cfg.export.benchmark or not paths:
        return {}
    bar = ctx.console.counter(desc=f"benchmark (LiteRT, {len(paths)} files x threads {list(cfg.export.threads)}, "
                                   "interleaved)", unit="block")
    try:
        return benchmark_variants(paths, threads=cfg.export.threads, runs=cfg.export.bench_runs, progress=bar.update)
    finally:
        bar.close()


def record_gate(ctx, exports, results, benches, *, saved_model=None, deliver=None) -> dict:
    """Write each file's verdict into its sidecar, ``export/gate.json`` and ``export/table.json``;
    print the table; return the verify stage's outputs.

    The delivered file is `tfxfer.export.delivery.choose_delivery`'s pick for ``export.deliver`` along
    `tfxfer.export.delivery.DELIVERY_CHAIN`, with the reason printed and recorded (``deliver`` is accepted
    for older callers; the chain already prefers a passing ``int8_qat``)."""
    from tfxfer.export import export_rows, write_verdicts
    from tfxfer.export.delivery import choose_delivery, superseded_by

    cfg, console = ctx.cfg, ctx.console
    write_verdicts({v: ctx.abs(exports[v]["sidecar"]) for v in results}, results)
    rows = export_rows({v: (e["path"], e["size_bytes"]) for v, e in exports.items()}, results, benches,
                       threads=cfg.export.threads)
    key, reason = choose_delivery(results, cfg.export.deliver)
    # A delivered integer file supersedes the other integer files (post-training, QAT, selective), a delivered
    # weight_only file the dynamic one: they stay in the table (marked FAIL if they failed) as the baseline the
    # remedy had to beat, but do not fail the run.
    superseded = superseded_by(results, key)
    passed = all(r.passed for v, r in results.items() if v not in superseded)
    for v in superseded:
        if not results[v].passed:
            console.info(f"  {v} failed its gate; {key} passed and is delivered instead")
    if reason:
        console.info(f"  {reason}")
    if key is None:
        key = cfg.export.deliver if cfg.export.deliver in results else next(iter(results))
    deliver = exports[key]["path"] if results[key].passed else None
    gate = {"passed": passed, "failed": [v for v, r in results.items() if not r.passed and v not in superseded],
            "superseded": superseded, "deliver_reason": reason,
            "results": {v: r.to_dict() for v, r in results.items()},
            "benchmarks": {v: b.to_dict() for v, b in benches.items()}}
    for entry in gate["results"].values():
        entry["path"] = ctx.rel(entry["path"]) if entry.get("path") else None
    gate_path = ctx.path("export", "gate.json")
    atomic_write_json(gate_path, gate)
    table_path = ctx.path("export", "table.json")
    atomic_write_json(table_path, {"rows": rows, "deliver": deliver, "deliver_variant": key, "passed": passed,
                                   "superseded": superseded, "deliver_reason": reason})
    width = max([8] + [len(row["variant"]) for row in rows])
    for row in rows:
        r = results[row["variant"]]
        interval = (f"  drop {r.accuracy_drop:+.2f} pts [95 % {r.drop_interval[0]:+.2f}, {r.drop_interval[1]:+.2f}: "
                    f"{r.drop_verdict}]" if r.drop_verdict and r.drop_interval else "")
        console.info(f"  {row['variant']:<{width}} {format_bytes(row['size_kib'] * 1024):>9}  "
                     f"{'-' if row['latency_ms'] is None else format(row['latency_ms'], '.2f')} ms  "
                     f"acc {row['accuracy_file']:.4f} (keras {row['accuracy_keras']:.4f}, agreement "
                     f"{r.top1_agreement:.4f}){interval}  gate {row['gate']}")
    artefacts = [ctx.rel(gate_path), ctx.rel(table_path)] + [e["sidecar"] for e in exports.values()]
    return {"passed": passed, "failed": gate["failed"], "deliver": deliver, "deliver_variant": key,
            "deliver_reason": reason, "rows": rows,
            "saved_model": ctx.rel(saved_model) if saved_model else None, "artefacts": artefacts}


def run_export(ctx):
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits

    data = splits(ctx)
    rep = take_images(data.train_plain, ctx.cfg.export.num_calibration)[0] if "int8" in ctx.cfg.export.variants else None
    return convert_stage(ctx, class_names=data.class_names, representative_data=rep)


def run_verify(ctx):
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits

    data = splits(ctx)

    def remedy_data():  # calibration from the training split only; the search sees the validation split only
        calibration = take_images(data.train_plain, ctx.cfg.export.num_calibration)[0]
        return calibration, take_images(data.val if data.val is not None else data.eval)

    return gate_stage(ctx, eval_data=data.held_out_arrays(), class_names=data.class_names,
                      saved_model=ctx.cfg.export.saved_model, remedy_data=remedy_data)


def export_stages() -> list[Stage]:
    """The export and verify stages of image recipes (`run_export`, `run_verify`)."""
    return [
        Stage("export", run_export, inputs=("data",) + MODEL_STAGES,
              config=lambda c: {"variants": list(c.export.variants), "num_calibration": c.export.num_calibration,
                                "seed": c.seed, "name": c.name}),
        Stage("verify", run_verify, inputs=("data", "export") + MODEL_STAGES,
              config=lambda c: {"export": c.section("export")["export"]},
              version=2),  # 2: the export chain (agreement target, selective int8 remedy)
    ]
