"""The field types of a run's result files, checked before the report reads them (`check_file`).

A run folder's JSON files can be edited by hand, or written by another tfxfer version: a file that
parses but holds a wrong-typed field (``"stages": [1]``, ``"rows": "abc"``) would stop the report
half-way. `tfxfer.report.run_data.load_run` checks each file against its `SHAPES` entry and reads a
file that fails as missing, listed in ``run["problems"]``, as it does a file that is not a JSON
object. A shape lists only the fields the report reads; other fields may hold anything.

Example:
    >>> check_file("export", {"rows": "abc"})
    '`rows` must be a list, not a string'
    >>> check_file("export", {"rows": [{"variant": "int8", "size_kib": "2 KiB"}]})
    '`rows[0]` has no `accuracy_keras`'
    >>> check_file("metrics", {"accuracy": 0.9, "per_class": [{"name": "a", "precision": 1, "recall": 1,
    ...                                                          "f1": 1, "support": 2}]}) is None
    True
"""

from __future__ import annotations

import dataclasses


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "a number",
               float: "a number"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Shape:
    """What one JSON value must be: ``kind`` ("number", "integer", "text", "scalar", "list", "object" or
    "any"), whether null is accepted, and for a list its ``item`` shape, for an object the shape of
    its ``fields`` where present (``{name: Shape}``; those in ``required`` must be present) and, with
    ``values``, the shape of every value."""

    kind: str
    nullable: bool = True
    item: Shape | None = None
    fields: dict | None = None
    required: tuple = ()
    values: Shape | None = None

    def problem(self, value, path: str) -> str | None:
        """What is wrong with ``value`` (found at ``path``), or None."""
        if value is None:
            return None if self.nullable else f"`{path}` must not be null"
        ok = {"number": _is_number(value), "integer": isinstance(value, int) and not isinstance(value, bool),
              "text": isinstance(value, str), "scalar": isinstance(value, (str, int, float)),
              "list": isinstance(value, list), "object": isinstance(value, dict), "any": True}[self.kind]
        if not ok:
            what = {"integer": "an integer", "object": "an object", "any": "anything"}.get(self.kind, f"a {self.kind}")
            return f"`{path}` must be {what}, not {_JSON_NAMES.get(type(value), type(value).__name__)}"
        if self.kind == "list" and self.item is not None:
            for i, item in enumerate(value):
                found = self.item.problem(item, f"{path}[{i}]")
                if found:
                    return found
        if self.kind == "object":
            for name in self.required:
                if name not in value:
                    return f"`{path}` has no `{name}`"
            for name, shape in (self.fields or {}).items():
                found = shape.problem(value[name], _join(path, name)) if name in value else None
                if found:
                    return found
            if self.values is not None:
                for key, item in value.items():
                    found = self.values.problem(item, _join(path, key))
                    if found:
                        return found
        return None


def _join(path: str, key) -> str:
    key = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
    return f"{path}.{key}" if path else key


NUMBER, INTEGER, TEXT, SCALAR, ANY = Shape("number"), Shape("integer"), Shape("text"), Shape("scalar"), Shape("any")


def _list(item=None, *, nullable=False) -> Shape:
    return Shape("list", nullable=nullable, item=item)


def _object(fields=None, *, required=(), values=None, nullable=False) -> Shape:
    return Shape("object", nullable=nullable, fields=fields, required=tuple(required), values=values)


def _row(numbers=(), *, required=(), nullable=False, **fields) -> Shape:
    """An object whose ``numbers`` are numbers (or null), ``required`` present, ``fields`` of their shape."""
    return _object({**{n: NUMBER for n in numbers}, **fields}, required=required, nullable=nullable)


_CONFUSION = _list(_list(NUMBER, nullable=False), nullable=True)
_HISTORY = {"history": _object(values=_list(NUMBER)),
            "stages": _list(_row(required=("epoch",), epoch=Shape("number", nullable=False),
                                 trainable_groups=_list(Shape("text", nullable=False)))),
            "lr_steps": _list(_row(required=("epoch", "lr"), epoch=Shape("number", nullable=False),
                                   lr=Shape("number", nullable=False)))}

#: The shape of each file `load_run` reads: its key in `tfxfer.report.run_data.FILES`, "distill_history"
#: (``distill/history.json``) and "config" (``config.yaml``).
SHAPES = {
    "manifest": _object({
        "status": TEXT, "wall_s": NUMBER, "command": _list(Shape("text", nullable=False), nullable=True),
        "stages": _object(values=_row(("wall_s",), status=TEXT), nullable=True),
        "packages": _object(nullable=True),
        "artefacts": _object(values=_row(required=("bytes", "sha256"), sha256=Shape("text", nullable=False)),
                             nullable=True)}),
    "data": _object({
        "class_counts": _object(values=_object(values=Shape("number", nullable=False))),
        "class_names": _list(Shape("scalar", nullable=False), nullable=True),
        "skipped": _list(_object(required=("path", "reason"))), "skip_counts": _object(),
        "duplicates": _list(), "notes": _list(),
        "leakage": _list(_object({"sha256": Shape("text", nullable=False), "splits": _object(values=_list())},
                                 required=("sha256", "splits"))),
        "imbalance": _object(nullable=True)}),
    "history": _object({**_HISTORY, "selection": _row(("head", "fine_tuned"), monitor=TEXT, nullable=True)},
                       required=("history",)),
    "distill_history": _object(_HISTORY, required=("history",)),
    "metrics": _object({
        **{k: NUMBER for k in ("accuracy", "macro_f1", "entity_f1", "ece")},
        "per_class": _list(_row(("precision", "recall", "f1"),
                                required=("name", "precision", "recall", "f1", "support"))),
        "entities": _list(_row(("precision", "recall", "f1"),
                               required=("type", "precision", "recall", "f1", "support")), nullable=True),
        "confusion": _CONFUSION,
        "reliability": _list(_row(("accuracy", "confidence"), required=("lo", "hi", "count", "accuracy", "confidence"),
                                  lo=Shape("number", nullable=False), hi=Shape("number", nullable=False),
                                  count=Shape("number", nullable=False)), nullable=True)}),
    "misclassified": _object({
        "shown": _list(_row(("confidence",), required=("true", "predicted"),
                            thumbnail=Shape("integer", nullable=False)))}),
    "export": _object({
        "rows": _list(_row(("latency_ms", "latency_nt_ms", "accuracy_keras", "accuracy_file", "accuracy_drop_pts",
                            "top1_agreement", "max_abs_error"),
                           required=("variant", "size_kib", "accuracy_keras", "accuracy_file", "accuracy_drop_pts",
                                     "top1_agreement", "max_abs_error", "gate"),
                           variant=Shape("text", nullable=False), size_kib=Shape("number", nullable=False),
                           gate=Shape("text", nullable=False), failures=_list(),
                           threads=_list(Shape("integer", nullable=False)))),
        "deliver": TEXT, "deliver_variant": TEXT, "superseded": _list(Shape("text", nullable=False))},
        required=("rows",)),
    "config": _object({"model": _object(), "data": _object(), "export": _object()}),
    "gate": _object({"results": _object(values=_row(
        ("tflite_accuracy", "keras_accuracy", "accuracy_drop", "top1_agreement"),
        required=("examples", "tflite_accuracy", "keras_accuracy", "accuracy_drop", "top1_agreement"),
        examples=Shape("number", nullable=False),
        drop_interval=Shape("list", item=Shape("number", nullable=False)),
        per_class=_list(_row(("tflite_accuracy", "keras_accuracy", "tflite_precision", "keras_precision"),
                             required=("name", "support")), nullable=True),
        confusion=_CONFUSION), nullable=True)}),
}


def _square(confusion, names, path: str) -> str | None:
    square = len(confusion or []) == len(names or []) and all(len(r) == len(names) for r in confusion or [])
    if confusion and names is not None and not square:
        return f"`{path}` must be {len(names)} x {len(names)} (one row and column per class of `per_class`)"
    return None


def check_file(key: str, value) -> str | None:
    """What is wrong with result file ``key`` (a `SHAPES` key) holding ``value``, or None.

    Besides the field types: a confusion matrix has a row and a column per class of its ``per_class``,
    a gate ``drop_interval`` holds two numbers.
    """
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    found = SHAPES[key].problem(value, "")
    if found:
        return found
    if key == "metrics" and value.get("per_class"):
        return _square(value.get("confusion"), value["per_class"], "confusion")
    if key == "gate":
        for variant, result in (value.get("results") or {}).items():
            interval = result.get("drop_interval")
            if interval is not None and len(interval) != 2:
                return f"`results.{variant}.drop_interval` must hold two numbers (low, high)"
            found = _square(result.get("confusion"), result.get("per_class") or [], f"results.{variant}.confusion")
            if found:
                return found
    return None


__all__ = ["SHAPES", "Shape", "check_file"]
