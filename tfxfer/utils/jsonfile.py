"""Read a JSON file tfxfer wrote earlier (a labels.json, a manifest, a stage record) as untrusted
input: bounded in size and nesting, of the expected shape, or a `DataError` that says which file
is damaged and how, instead of a ``JSONDecodeError`` / ``KeyError`` traceback.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.json")
    >>> _ = open(path, "w").write('{"class_names": ["cat", "dog"]}')
    >>> read_json(path, what="labels file", fields={"class_names": list})["class_names"]
    ['cat', 'dog']
    >>> _ = open(path, "w").write('{"class_names": "cat"}')
    >>> try:
    ...     read_json(path, what="labels file", fields={"class_names": list})
    ... except DataError as e:
    ...     print(str(e).replace(path, "<path>"))
    labels file <path> is damaged: `class_names` must be a list, not str
"""

from __future__ import annotations

import json
import os
import stat

from tfxfer.errors import DataError

#: JSON files larger than this are refused unread.
MAX_JSON_BYTES = 64 << 20


def read_json(path, *, what: str = "JSON file", expect: type = dict, fields: dict | None = None,
              max_bytes: int = MAX_JSON_BYTES):
    """The parsed content of ``path``, checked.

    Args:
        path: the file (a regular file: a FIFO or a device is refused, not read).
        what: how the error names the file ("labels file", "manifest", ...).
        expect: the type of the top-level value (``dict`` or ``list``).
        fields: for a dict, required ``{key: type or tuple of types}``.
        max_bytes: larger files are refused.

    Raises:
        DataError: missing, not a regular file, too large, not UTF-8 JSON, nested too deeply, or
            not of the expected shape; the message names the file and the problem.
    """
    path = os.fspath(path)
    shown = os.path.basename(path) if len(path) > 200 else path
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DataError(f"{what} {shown} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{what} {shown} is not a regular file")
    if st.st_size > max_bytes:
        raise DataError(f"{what} {shown} is {st.st_size} bytes (at most {max_bytes} are read)")
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read(max_bytes + 1).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {shown} is damaged: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} {shown} is damaged: not valid JSON ({exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno})") from None
    except RecursionError:
        raise DataError(f"{what} {shown} is damaged: nested too deeply") from None
    except OSError as exc:
        raise DataError(f"{what} {shown} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(value, expect):
        raise DataError(f"{what} {shown} is damaged: a JSON {type(value).__name__}, not a {expect.__name__}")
    for key, kind in (fields or {}).items():
        if key not in value:
            raise DataError(f"{what} {shown} is damaged: no `{key}`")
        if not isinstance(value[key], kind) or isinstance(value[key], bool) and kind in (int, float):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise DataError(f"{what} {shown} is damaged: `{key}` must be a {name}, not {type(value[key]).__name__}")
    return value
