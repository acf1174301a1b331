"""A causal LM as a TensorFlow SavedModel with a string-in, string-out ``generate`` signature.

`save_generate_savedmodel(lm, path, max_new_tokens=...)` writes a SavedModel whose
``serving_default`` / ``generate`` signature takes ``prompts`` (a batch of strings) and returns
``text`` (each prompt's continuation, stop token excluded) and ``new_tokens`` (how many tokens
each row generated). Tokenization, greedy decoding with the KV cache and detokenization all run in
the graph, with core TensorFlow ops only: the SavedModel loads with ``tf.saved_model.load`` in a
process that imports neither tfxfer, keras, keras-hub nor tensorflow-text (TF Serving can serve it).

`GraphBPE` is the in-graph tokenizer. It matches `BPETokenizer` (the Hugging Face tokenizer the
model was trained with) id for id: the byte-level pre-tokenizer's pattern needs a look-ahead
(``\\s+(?!\\S)``) that TensorFlow's regular expressions (RE2) lack, so the text is first cut before
the last whitespace character of every whitespace run that a non-space character follows (the
only place the look-ahead changes the pieces), then matched with the pattern without it; control
tokens (``<|im_start|>``) and, for SmolLM2, every digit are cut out first, as Hugging Face does.
Pieces are separated by inserting U+E000 (`SEPARATOR`) and splitting; a control token stands in
the text as a run of U+E002 until the split. The prompt's own U+E000, U+E001 and U+E002 are first
escaped (U+E001 and a second private-use character, which the pattern treats as it treats the
character they stand for) and restored in each piece, so no text is cut there or read as a
control token: ``"a\ue000b"`` and a literal ``"\ua66eA\ua66e"`` tokenize as `BPETokenizer`
tokenizes them. keras-hub's ``BytePairTokenizer`` supplies the lookup tables and the
merge loop (its own in-graph split differs from Hugging Face on runs of whitespace, see
`tfxfer.causal_lm.tokenizer`).

What `generate` refuses, the SavedModel refuses too, before the model runs: the request fails
(``tf.errors.InvalidArgumentError``) with a message naming the prompt, ``prompts[1]``, for an
empty batch, an empty prompt, text that is not UTF-8, or a character whose UTF-8 bytes the
vocabulary has no token for (SmolLM2 lacks a few, such as ``"\x14"``); no id outside the
vocabulary ever reaches the model.

Example (a tiny random model; SmolLM2's SavedModel is ~540 MB in float32):
    >>> import tempfile
    >>> from tfxfer.causal_lm import LlamaConfig, build_language_model
    >>> from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary
    >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["ab", "<|end|>"], merges=["a b"],
    ...                    special_tokens=["<|end|>"], eos_token_id=257)
    >>> lm = build_language_model(LlamaConfig(vocabulary_size=258, num_layers=1, num_query_heads=2,
    ...                                       num_key_value_heads=1, hidden_dim=16, intermediate_dim=32,
    ...                                       context_length=64), tok)
    >>> path = save_generate_savedmodel(lm, tempfile.mkdtemp() + "/lm", max_new_tokens=4)
    >>> import tensorflow as tf
    >>> out = tf.saved_model.load(path).signatures["generate"](prompts=tf.constant(["Hello"]))
    >>> sorted(out), int(out["new_tokens"][0]) <= 4
    (['new_tokens', 'text'], True)
"""

from __future__ import annotations

import re

from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.utils.validate import check_int

#: Inserted between pre-tokenizer pieces and split on (never part of a piece).
SEPARATOR = "\ue000"
#: Starts an escape: the prompt's own U+E000 / U+E001 / U+E002 become this and a second character.
_ESCAPE = "\ue001"
#: A control token stands in the text as ``index + 1`` of these between separators until the split.
_CONTROL = "\ue002"
#: reserved character -> the character after `_ESCAPE` that stands for it (all private use: the
#: pattern treats them as it treats the character they stand for). `_ESCAPE` itself comes first.
_ESCAPES = {_ESCAPE: "\ue003", SEPARATOR: "\ue004", _CONTROL: "\ue005"}
#: Unicode White_Space, as Hugging Face's ``\\s`` (RE2's ``\\s`` is ASCII only).
_WS = r"\t\n\x{0b}\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
#: GPT-2's byte-level pattern without its look-ahead alternative (see the module docstring).
_PATTERN = (r"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^" + _WS + r"\p{L}\p{N}" + SEPARATOR + r"]+|["
            + _WS + r"]+)")
#: The last whitespace character of a run that a non-space character follows.
_LOOKAHEAD = r"([" + _WS + r"])([^" + _WS + SEPARATOR + r"])"


def _escape(text: str) -> str:
    """``text`` with its reserved characters escaped, as `GraphBPE.pieces` escapes a prompt."""
    for char, code in _ESCAPES.items():
        text = text.replace(char, _ESCAPE + code)
    return text


def _first(flags):
    """The index of the first True of ``flags`` [N] (N when none: valid for `_excerpt`)."""
    import tensorflow as tf

    flags = tf.concat([tf.cast(flags, tf.int32), [1]], 0)
    return tf.cast(tf.argmax(flags, output_type=tf.int64), tf.int32)


def _excerpt(strings, row, limit: int = 200):
    """``strings[row]`` (empty when ``row`` is past the end) cut to ``limit`` characters, for a message."""
    import tensorflow as tf

    text = tf.gather(tf.concat([strings, [""]], 0), row)
    return tf.strings.substr(text, 0, limit, unit="UTF8_CHAR")


def _code_point(code):
    """``"U+0014"`` for the int32 scalar ``code``."""
    import tensorflow as tf

    digits = tf.gather(tf.constant(list("0123456789ABCDEF")), [(code // 16 ** k) % 16 for k in range(5, -1, -1)])
    text = tf.strings.reduce_join(digits)
    return tf.strings.join(["U+", tf.strings.substr(text, tf.where(code < 0x10000, 2, 0), 6)])


class GraphBPE:
    """`BPETokenizer` in TensorFlow ops: ``tokenize(strings [B]) -> ragged int32 ids [B, None]`` and
    ``detokenize(ragged ids) -> strings``, for use inside a ``tf.function`` or a SavedModel.

    Build it with ``GraphBPE(lm.tokenizer)``; it must be an attribute of the ``tf.Module`` that is
    saved (its tables are tracked through ``self.layer``). `tokenize` refuses what `BPETokenizer.encode`
    refuses (a character whose bytes the vocabulary has no token for) with an
    ``InvalidArgumentError`` naming the string, and text that is not UTF-8.

    Example:
        >>> import tensorflow as tf
        >>> from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary
        >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["ab", "<|end|>"], merges=["a b"],
        ...                    special_tokens=["<|end|>"], eos_token_id=257)
        >>> GraphBPE(tok).tokenize(tf.constant(["ab<|end|>", "a\ue000b"])).to_list()
        [[256, 257], [97, 238, 128, 128, 98]]
    """

    def __init__(self, tokenizer):
        import keras_hub

        from tfxfer.causal_lm.tokenizer import BPETokenizer

        if not isinstance(tokenizer, BPETokenizer):
            raise ArgumentTypeError("tokenizer", tokenizer, "a tfxfer.causal_lm.BPETokenizer")
        if not tokenizer.merges:
            raise ArgumentError("tokenizer", tokenizer, "must have merge rules (keras-hub's in-graph tables "
                                                        "cannot be built without any)")
        self.pre = tokenizer.pre
        self.add_bos_token, self.bos_token_id = tokenizer.add_bos_token, tokenizer.bos_token_id
        specials = sorted(tokenizer.special_tokens, key=len, reverse=True)  # longest first
        self.specials = specials
        self.alternates = [_CONTROL * (i + 1) for i in range(len(specials))]
        # the bytes the vocabulary has no token for (BPETokenizer refuses a text needing one)
        self.absent_bytes = sorted(tokenizer._absent_bytes)
        vocabulary = {token: i for i, token in enumerate(tokenizer.tokens)}
        self.layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary, merges=list(tokenizer.merges), unsplittable_tokens=list(specials))
        self.layer._maybe_initialized_tf()  # the TensorFlow tables and merge loop (not the Rust tokenizer)

    def pieces(self, strings):
        """Pre-tokenizer pieces (ragged strings [B, None]), as Hugging Face cuts ``strings`` [B]."""
        import tensorflow as tf

        text = tf.convert_to_tensor(strings, tf.string)
        for char, code in _ESCAPES.items():  # _ESCAPE first: the escapes written next stay unambiguous
            text = tf.strings.regex_replace(text, re.escape(char), _ESCAPE + code)
        for special, alternate in zip(self.specials, self.alternates):
            text = tf.strings.regex_replace(text, re.escape(_escape(special)), SEPARATOR + alternate + SEPARATOR)
        if self.pre == "smollm":
            text = tf.strings.regex_replace(text, r"(\p{N})", SEPARATOR + r"\1" + SEPARATOR)
        text = tf.strings.regex_replace(text, _LOOKAHEAD, SEPARATOR + r"\1\2")
        text = tf.strings.regex_replace(text, _PATTERN, r"\1" + SEPARATOR)
        pieces = tf.strings.split(text, sep=SEPARATOR)
        pieces = tf.ragged.boolean_mask(pieces, pieces != "")
        values = restored = pieces.flat_values
        for char, code in reversed(_ESCAPES.items()):  # _ESCAPE last: it never makes a new escape
            restored = tf.strings.regex_replace(restored, re.escape(_ESCAPE + code), char)
        for special, alternate in zip(self.specials, self.alternates):
            # only a run the replacement above wrote: the prompt's own U+E002 were escaped
            restored = tf.where(values == alternate, special, restored)
        return pieces.with_flat_values(restored)

    def check(self, strings, *, name: str = "strings"):
        """Assertions (a list of ops; in eager mode they raise at once) that every one of ``strings`` [B]
        is UTF-8 text whose bytes all have a token, each an ``InvalidArgumentError`` naming
        ``name[i]`` as `BPETokenizer.encode` names it. `tokenize` runs them first."""
        import tensorflow as tf

        text = tf.convert_to_tensor(strings, tf.string)
        valid = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD,
                                             replace_control_characters=False)
        bad = text != valid
        row = _first(bad)
        checks = [tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [tf.strings.join([
            f"`{name}[", tf.strings.as_string(row), "]` must be valid UTF-8 text. Received (invalid bytes "
            "shown as U+FFFD): ", _excerpt(valid, row)])])]
        if self.absent_bytes:
            codes = tf.strings.unicode_decode(valid, "UTF-8")  # ragged [B, C] code points
            char_bytes = tf.strings.bytes_split(tf.strings.unicode_encode(codes.flat_values[:, None], "UTF-8"))
            absent = tf.constant([bytes([b]) for b in self.absent_bytes])
            hit = tf.reduce_any(char_bytes.flat_values[:, None] == absent[None, :], axis=1)
            bad_char = tf.reduce_any(char_bytes.with_flat_values(hit), axis=1)  # [N], N = all characters
            first = _first(bad_char)  # row-major: a character of the first row that has one
            rows = tf.concat([tf.cast(codes.value_rowids(), tf.int32), [tf.cast(codes.nrows(), tf.int32)]], 0)
            row = tf.gather(rows, first)
            index = first - tf.gather(tf.cast(codes.row_splits, tf.int32), row)
            code = tf.gather(tf.concat([codes.flat_values, [0]], 0), first)
            checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad_char)), [tf.strings.join([
                f"`{name}[", tf.strings.as_string(row), "]` holds the character ", _code_point(code), " at index ",
                tf.strings.as_string(index), ", whose UTF-8 bytes this vocabulary has no token for. "
                f"Received: {name}[", tf.strings.as_string(row), "]=", _excerpt(valid, row)])]))
        return checks

    def tokenize(self, strings, *, name: str = "strings"):
        """Token ids (ragged int32 [B, None]) of ``strings`` [B]; `check` fails first on a string
        `BPETokenizer.encode` refuses, naming it ``name[i]``."""
        import tensorflow as tf

        layer = self.layer
        strings = tf.convert_to_tensor(strings, tf.string)
        with tf.control_dependencies(self.check(strings, name=name)):
            strings = tf.identity(strings)
        pieces = self.pieces(strings)
        flat = pieces.flat_values
        found = layer.cache.lookup(flat)
        unseen = tf.reduce_any((found == "") & (flat != ""))

        def merge():
            layer._bpe_merge_and_update_cache_tf(tf.boolean_mask(flat, found == ""))
            return layer.cache.lookup(flat)

        merged = tf.cond(unseen, merge, lambda: found)
        tokens = tf.strings.split(merged, sep=" ")
        ids = tf.cast(layer.token_to_id_map.lookup(tokens), tf.int32)
        ids = tf.RaggedTensor.from_row_splits(ids.flat_values, tf.gather(ids.row_splits, pieces.row_splits))
        # `check` covers every way to get an id outside the vocabulary (-1); this is the last guard
        missing = tf.reduce_any(ids < 0, axis=1)
        row = _first(missing)
        guard = tf.debugging.Assert(tf.logical_not(tf.reduce_any(missing)), [tf.strings.join([
            f"`{name}[", tf.strings.as_string(row), "]` has a piece that is not in the vocabulary. Received: "
            f"{name}[", tf.strings.as_string(row), "]=", _excerpt(strings, row)])])
        with tf.control_dependencies([guard]):
            ids = ids.with_flat_values(tf.identity(ids.flat_values))
        if self.add_bos_token and self.bos_token_id is not None:
            bos = tf.fill([ids.nrows(), 1], tf.constant(self.bos_token_id, tf.int32))
            ids = tf.concat([tf.RaggedTensor.from_tensor(bos), ids], axis=1)
        return ids

    def detokenize(self, ids):
        """Strings [B] of ragged ids [B, None] (control tokens written as text, invalid UTF-8 as U+FFFD, like
        `BPETokenizer.decode`)."""
        import tensorflow as tf

        layer = self.layer
        text = tf.strings.reduce_join(layer.id_to_token_map.lookup(tf.cast(ids, "int32")), axis=-1)
        chars = tf.strings.unicode_split(text, "UTF-8")
        mapped = layer.unicode2byte.lookup(chars)
        # control tokens are not byte-level strings: a character with no byte keeps its UTF-8 text
        chars_bytes = tf.where(mapped == "", chars, mapped) if self.specials else mapped
        raw = tf.strings.reduce_join(chars_bytes, axis=-1)
        # bytes that are not UTF-8 (a character cut between tokens) become U+FFFD, as in `BPETokenizer.decode`
        return tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD,
                                            replace_control_characters=False)


def _module(lm, max_new_tokens, stop_token_ids):
    import tensorflow as tf

    from tfxfer.causal_lm.generation import _decode_loop
    from tfxfer.causal_lm.samplers import make_sampler

    tokenizer = GraphBPE(lm.tokenizer)
    loop = _decode_loop(lm.model, make_sampler("greedy"), stop_token_ids)
    limit = lm.context_length - max_new_tokens
    start = len(lm.tokenizer.start_ids) if limit > len(lm.tokenizer.start_ids) else 0
    pad = next(i for i in range(len(stop_token_ids) + 1) if i not in stop_token_ids)
    stops = tf.constant(list(stop_token_ids) or [-1], tf.int32)

    class Generate(tf.Module):
        def __init__(self):
            super().__init__(name="tfxfer_causal_lm")
            # the weights the loop reads, not the Keras model: tracking the model makes the save walk every
            # layer and trace its call functions (SmolLM2: 38 s to save 556 MB; 25 s and 548 MB this way)
            self.model_weights = list(lm.model.weights)
            self.tokenizer_layer = tokenizer.layer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
        def generate(self, prompts):
            # what `generate` refuses fails the request here, before the model runs (see the module doc)
            empty = tf.strings.length(prompts) == 0
            row = _first(empty)
            checks = [
                tf.debugging.Assert(tf.size(prompts) > 0, ["`prompts` must hold at least one prompt. Received: "
                                                           "an empty batch"]),
                tf.debugging.Assert(tf.logical_not(tf.reduce_any(empty)), [tf.strings.join([
                    "`prompts[", tf.strings.as_string(row), "]` must be a non-empty string. Received: prompts[",
                    tf.strings.as_string(row), "]=''"])]),
            ]
            with tf.control_dependencies(checks):
                prompts = tf.identity(prompts)
            ids = tokenizer.tokenize(prompts, name="prompts")
            # a prompt longer than the context keeps its start token and its end (BPETokenizer.keep_last)
            if start:
                ids = tf.concat([ids[:, :start], ids[:, start:][:, -(limit - start):]], axis=1)
            else:
                ids = ids[:, -limit:]
            lengths = tf.cast(ids.row_lengths(), tf.int32)
            total = tf.reduce_max(lengths) + max_new_tokens
            token_ids = ids.to_tensor(default_value=pad, shape=[None, None])
            token_ids = tf.pad(token_ids, [[0, 0], [0, total - tf.shape(token_ids)[1]]], constant_values=pad)
            mask = tf.sequence_mask(lengths, total)
            out = loop(token_ids, mask)
            positions = lengths[:, None] + tf.range(max_new_tokens)[None, :]
            new = tf.gather(out, positions, batch_dims=1)
            is_stop = tf.reduce_any(new[:, :, None] == stops[None, None, :], axis=-1)
            keep = tf.math.cumsum(tf.cast(is_stop, tf.int32), axis=1) == 0
            new = tf.ragged.boolean_mask(new, keep)
            return {"text": tokenizer.detokenize(new), "new_tokens": tf.cast(new.row_lengths(), tf.int32)}

    return Generate()


def save_generate_savedmodel(lm, path, *, max_new_tokens: int = 64, stop_tokens="eos") -> str:
    """Write ``lm`` as a SavedModel with a string-in, string-out greedy ``generate`` signature.

    Args:
        lm: a `LanguageModel` (an adapted one included).
        path: the SavedModel folder (written whole, then moved into place).
        max_new_tokens: tokens generated per prompt (fixed in the graph).
        stop_tokens: "eos" (the tokenizer's end token), None, or a list of tokens / ids; a row ends
            at the first one (left out of ``text``).

    Returns:
        ``path``. Serve it with ``tf.saved_model.load(path).signatures["generate"](prompts=...)``
        or TF Serving (``serving_default`` is the same function).
    """
    import os
    import shutil
    import tempfile

    import tensorflow as tf

    from tfxfer.causal_lm.generation import _stop_ids
    from tfxfer.causal_lm.language_model import LanguageModel

    if not isinstance(lm, LanguageModel):
        raise ArgumentTypeError("lm", lm, "a tfxfer.causal_lm.LanguageModel")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=1, high=lm.context_length - 1)
    stop_ids = _stop_ids(lm.tokenizer, stop_tokens)
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ArgumentError("path", path, "must be a folder (or not exist yet)")
    module = _module(lm, max_new_tokens, stop_ids)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".savedmodel-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures={"serving_default": module.generate,
                                                         "generate": module.generate})
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


__all__ = ["GraphBPE", "SEPARATOR", "save_generate_savedmodel"]
