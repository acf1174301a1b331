"""`safe_filename`: turn a class name (from a folder, CSV or JSONL label) into a safe file name.

Labels come from data other people made. Used raw in a path, a label such as ``../../.bashrc``,
``/etc/passwd``, ``C:\\x``, ``con`` or one with a NUL byte writes outside the output folder or
fails on some systems. `safe_filename` keeps letters, digits, ``-``, ``_`` and ``.``, replaces
everything else, never returns ``.``/``..``/empty/reserved device names, bounds the length, and
appends a short hash whenever it changed the name so distinct labels stay distinct.
`safe_join` additionally checks the result stays inside the folder.

Example:
    >>> from tfxfer.reliability import safe_filename
    >>> safe_filename("golden retriever")
    'golden_retriever-41f9a46a'
    >>> safe_filename("../../etc/passwd").startswith("etc_passwd")
    True
    >>> safe_filename("cat")
    'cat'
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

from tfxfer.errors import ArgumentTypeError, UnsafeFileError

_ALLOWED = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
MAX_LENGTH = 100


def safe_filename(name, *, max_length: int = MAX_LENGTH) -> str:
    """A file-name-safe version of ``name`` (a class label); unchanged when already safe."""
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise ArgumentTypeError("name", name, "a str (or int) label")
    original = str(name)
    text = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    text = _ALLOWED.sub("_", text).strip("._-")
    text = re.sub(r"_+", "_", text)
    if text.split(".")[0].lower() in _RESERVED:
        text = "_" + text
    changed = text != original
    limit = max(16, int(max_length))
    if len(text) > limit:
        text, changed = text[: limit - 9], True
    if not text:
        text, changed = "label", True
    if changed:
        text += "-" + hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return text


def safe_join(directory, name, *, suffix: str = "") -> str:
    """``directory/<safe_filename(name)><suffix>``, verified to stay inside ``directory``."""
    root = os.path.realpath(os.fspath(directory))
    path = os.path.realpath(os.path.join(root, safe_filename(name) + suffix))
    if os.path.dirname(path) != root:
        raise UnsafeFileError(f"{name!r} would be written outside {root} (as {path}); refusing")
    return path
