"""`chat_prompt`: messages -> the ChatML text an instruction-tuned model (SmolLM2) was tuned on.

SmolLM2-Instruct's chat template (``tokenizer.chat_template`` in its GGUF file, a Jinja template)
renders each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, puts a default system
message first when the conversation does not start with one, and ends with
``<|im_start|>assistant\\n`` when a reply is wanted. `chat_prompt` writes the same text without
Jinja; generation then stops at ``<|im_end|>`` (SmolLM2's end token, `generate`'s default stop).

Example:
    >>> from tfxfer.causal_lm.chat import chat_prompt
    >>> print(chat_prompt("Hi!", system="Be brief."))
    <|im_start|>system
    Be brief.<|im_end|>
    <|im_start|>user
    Hi!<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
"""

from __future__ import annotations

from tfxfer.errors import ArgumentError, ArgumentTypeError

#: The system message SmolLM2-Instruct's template adds when none is given.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
ROLES = ("system", "user", "assistant")


def chat_prompt(messages, *, system: str | None = SMOLLM2_SYSTEM, add_generation_prompt: bool = True) -> str:
    """ChatML text of ``messages`` (a user string, or ``{"role", "content"}`` dicts in order).

    Args:
        messages: the user's text, or a list of ``{"role": "system"|"user"|"assistant",
            "content": str}``.
        system: the system message put first when ``messages`` does not start with one (SmolLM2's
            default; None for none).
        add_generation_prompt: end with ``<|im_start|>assistant\\n`` so the model writes the reply.
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if isinstance(messages, bytes) or not hasattr(messages, "__iter__"):
        raise ArgumentTypeError("messages", messages, 'a str or a list of {"role", "content"} dicts')
    if isinstance(messages, dict) or not messages:
        raise ArgumentError("messages", messages, "must be a string or a non-empty list of messages")
    messages = list(messages)
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ArgumentTypeError(f"messages[{i}]", message, 'a dict with keys "role" and "content"')
        if message["role"] not in ROLES:
            raise ArgumentError(f"messages[{i}]['role']", message["role"], f"must be one of {ROLES}")
        if not isinstance(message["content"], str):
            raise ArgumentTypeError(f"messages[{i}]['content']", message["content"], "a str")
    if system is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
