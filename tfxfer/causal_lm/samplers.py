"""`make_sampler`: a checked keras-hub sampler from a name and its settings.

=========  =====================================================  ==========================
name       picks the next token                                   settings
=========  =====================================================  ==========================
greedy     the most probable one (deterministic)                  none
random     from the whole distribution                            temperature, seed
top_k      from the ``top_k`` most probable                       top_k, temperature, seed
top_p      from the smallest set with probability >= ``top_p``    top_p, temperature, seed
=========  =====================================================  ==========================

A setting that a sampler does not use is an error rather than silently ignored (``temperature``
with ``greedy``, ``top_k`` with ``top_p``...).

Example:
    >>> from tfxfer.causal_lm.samplers import make_sampler
    >>> type(make_sampler("top_k", top_k=5, temperature=0.7, seed=0)).__name__
    'TopKSampler'
    >>> make_sampler("greedy", temperature=0.5)
    Traceback (most recent call last):
    ...
    tfxfer.errors.ArgumentError: `temperature` has no effect with sampler="greedy"; leave it at 1.0. Received: temperature=0.5
"""

from __future__ import annotations

from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.utils.validate import check_float, check_int

SAMPLERS = ("greedy", "random", "top_k", "top_p")
_USES = {"greedy": set(), "random": {"temperature", "seed"}, "top_k": {"top_k", "temperature", "seed"},
         "top_p": {"top_p", "temperature", "seed"}}


#: The largest seed accepted (TensorFlow's random ops take seeds as 32-bit unsigned values here).
MAX_SEED = 2**32 - 1


def make_sampler(name: str = "greedy", *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, vocabulary_size: int | None = None):
    """A ``keras_hub.samplers.Sampler`` for ``name`` (one of `SAMPLERS`), its settings checked.

    Args:
        name: "greedy", "random", "top_k" or "top_p".
        temperature: > 0; logits are divided by it before sampling (< 1 sharper, > 1 flatter).
        top_k: for "top_k", how many of the most probable tokens to sample from (default 50).
        top_p: for "top_p", the nucleus probability in (0, 1] (default 0.9).
        seed: for the random samplers, makes the draws repeatable; an int in [0, `MAX_SEED`].
        vocabulary_size: the model's vocabulary size; ``top_k`` may not exceed it.

    Raises:
        UnknownNameError: unknown ``name``. ArgumentError: a setting out of range, or one that
        ``name`` does not use.
    """
    settings = check_sampler(name, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                             vocabulary_size=vocabulary_size)
    import keras_hub

    temperature, seed = settings["temperature"], settings["seed"]
    if name == "greedy":
        return keras_hub.samplers.GreedySampler()
    if name == "random":
        return keras_hub.samplers.RandomSampler(temperature=temperature, seed=seed)
    if name == "top_k":
        return keras_hub.samplers.TopKSampler(k=settings["top_k"], temperature=temperature, seed=seed)
    return keras_hub.samplers.TopPSampler(p=settings["top_p"], temperature=temperature, seed=seed)


def check_sampler(name: str = "greedy", *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, seed: int | None = None, vocabulary_size: int | None = None) -> dict:
    """`make_sampler`'s checks alone (imports nothing heavy): the settings, defaults filled in.

    Example:
        >>> check_sampler("top_p", temperature=0.7)
        {'name': 'top_p', 'temperature': 0.7, 'top_k': None, 'top_p': 0.9, 'seed': None}
    """
    if name not in SAMPLERS:
        raise UnknownNameError("sampler", name, SAMPLERS)
    temperature = check_float("temperature", temperature, low=0, low_open=True)
    given = {"temperature": temperature != 1.0, "top_k": top_k is not None, "top_p": top_p is not None,
             "seed": seed is not None}
    for setting, is_given in given.items():
        if is_given and setting not in _USES[name]:
            default = "1.0" if setting == "temperature" else "None"
            received = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}[setting]
            raise ArgumentError(setting, received,
                                f'has no effect with sampler="{name}"; leave it at {default}')
    seed = check_int("seed", seed, low=0, high=MAX_SEED, allow_none=True)
    if name == "top_k":
        default = 50 if vocabulary_size is None else min(50, vocabulary_size)
        if vocabulary_size is not None and top_k is not None and top_k is not True and top_k > vocabulary_size:
            raise ArgumentError("top_k", top_k, f"must be <= the vocabulary size ({vocabulary_size})")
        top_k = check_int("top_k", default if top_k is None else top_k, low=1, high=vocabulary_size)
    if name == "top_p":
        top_p = check_float("top_p", 0.9 if top_p is None else top_p, low=0, high=1, low_open=True)
    return {"name": name, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
