"""Held-out span infilling: fixed masks whose spans rebuild the text, scores equal to a hand computation
on a tiny random decoder-only model, and a layout (mode token, attention) that changes the score."""

from __future__ import annotations

import functools
import itertools
import math

import jax
import numpy as np
import pytest
from flax import nnx

from lowres.data.tasks.objectives import check_sentinels
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
from lowres.data.vocab.vocabulary import MODE_TOKENS, reserved_id
from lowres.errors import ConfigError
from lowres.evaluation.infilling import R_DENOISER, infilling_examples, infilling_metrics, model_infilling
from lowres.inference.scoring import jitted_scorer
from lowres.models import DecoderOnly, decoder_only_config

SENTINELS = 16
VOCAB = ReservedByteVocabulary(MODE_TOKENS, num_sentinels=SENTINELS)
DOCS = ["The quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps again.",
        "Ẹ kú àárọ̀, báwo ni? Mo wà dáadáa.", "a short one"]  # fmt: skip
INPUTS, TARGETS = 48, 24


def _spans(targets: list[int]) -> dict[int, list[int]]:
    """sentinel -> the tokens after it in the targets (EOS dropped)."""
    spans: dict[int, list[int]] = {}
    for token in targets[:-1]:
        if token >= VOCAB.vocab_size - SENTINELS:
            current = spans[token] = []
        else:
            current.append(token)
    return spans


def test_masks_are_fixed_and_the_spans_rebuild_the_text():
    examples = infilling_examples(VOCAB, DOCS, INPUTS, TARGETS)
    assert examples == infilling_examples(VOCAB, DOCS, INPUTS, TARGETS)
    assert examples != infilling_examples(VOCAB, DOCS, INPUTS, TARGETS, seed=1)
    nlu = reserved_id(VOCAB, "[NLU]")
    rebuilt = []
    for example in examples:
        assert example.inputs[0] == nlu and example.inputs[-1] == example.targets[-1] == VOCAB.eos_id
        assert len(example.inputs) <= INPUTS and len(example.targets) <= TARGETS
        spans = _spans(example.targets)
        assert sum(map(len, spans.values())) == example.masked_tokens > 0
        for token in example.inputs[1:-1]:
            rebuilt += spans.pop(token) if token in spans else [token]
        assert not spans  # every sentinel of the targets appears in the inputs
    assert VOCAB.decode(rebuilt) == "".join(DOCS)
    # ASCII text: one byte per token; the Yoruba document's marks take several bytes per character.
    english = infilling_examples(VOCAB, DOCS[:1], INPUTS, TARGETS)
    assert all(e.masked_bytes == e.masked_tokens for e in english)
    assert 0 < sum(e.masked_bytes for e in examples) < sum(len(d.encode()) for d in DOCS)
    # about 15% of the tokens are masked, in spans of about 3
    masked = sum(e.masked_tokens for e in examples)
    assert 0.1 < masked / len(rebuilt) < 0.2


def test_too_few_sentinels_is_a_config_error():
    # Regression: a byte vocabulary's extra ids count its reserved tokens too ([NLU], [NLG], [S2S] here),
    # so check_sentinels compared the spans against 4 extra ids instead of its 1 sentinel.
    one_sentinel = ReservedByteVocabulary(MODE_TOKENS, num_sentinels=1)
    with pytest.raises(ConfigError, match="num_sentinels"):
        check_sentinels(R_DENOISER, INPUTS, TARGETS, one_sentinel)
    with pytest.raises(ConfigError, match="num_sentinels"):
        infilling_examples(one_sentinel, DOCS, INPUTS, TARGETS)


@pytest.fixture(scope="module")
def model():
    """(module, jitted per-row scorer, infilling loss of a layout: cached) of a tiny random decoder-only model."""
    config = decoder_only_config("tiny", VOCAB.vocab_size)
    graphdef, params, rest = nnx.split(DecoderOnly(config, rngs=nnx.Rngs(jax.random.key(0, impl="rbg"))),
                                       nnx.Param, ...)  # fmt: skip
    score_fn = jitted_scorer(graphdef, params, rest)

    @functools.cache
    def scores(mode_token, attention):
        return model_infilling(score_fn, VOCAB, {"xx": DOCS}, INPUTS, TARGETS, "decoder_only", batch_size=4,
                               mode_token=mode_token, decoder_attention=attention)["xx"]  # fmt: skip

    return nnx.merge(graphdef, params, rest), scores


def _hand_nll(module, mode_token: str | None, attention: str) -> tuple[float, float, int, int]:
    """Summed NLL of all targets and of the span tokens, target tokens and masked bytes, laid out by hand
    one example per row: [BOS] + inputs + targets (padded at the end), bidirectional over BOS + inputs
    for a prefix LM."""
    examples = infilling_examples(VOCAB, DOCS, INPUTS, TARGETS, mode_token)
    tokens = np.zeros((len(examples), INPUTS + TARGETS + 1), np.int32)
    causal = np.zeros((len(examples), INPUTS + TARGETS), np.int32)
    for row, example in enumerate(examples):
        sequence = [0, *example.inputs, *example.targets]
        tokens[row, : len(sequence)] = sequence
        if attention == "prefix":
            causal[row, : len(example.inputs) + 1] = 1
    logits = nnx.jit(lambda m, x, c: m(x, decoder_causal_attention=c))(module, tokens[:, :-1], causal)
    log_probs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    nll = span_nll = 0.0
    for row, example in enumerate(examples):
        positions = np.arange(len(example.inputs), len(example.inputs) + len(example.targets))
        token_nll = -log_probs[row, positions, tokens[row, positions + 1]]
        nll += float(token_nll.sum())
        is_span = np.array([t < VOCAB.vocab_size - SENTINELS and t != VOCAB.eos_id for t in example.targets])
        span_nll += float(token_nll[is_span].sum())
    return nll, span_nll, sum(len(e.targets) for e in examples), sum(e.masked_bytes for e in examples)


@pytest.mark.parametrize("mode_token, attention", [("[NLU]", "prefix"), (None, "causal")])
def test_score_equals_a_hand_computation(model, mode_token, attention):
    module, scores = model
    nll, span_nll, tokens, masked_bytes = _hand_nll(module, mode_token, attention)
    result = scores(mode_token, attention)
    assert result["target_tokens"] == tokens and result["masked_bytes"] == masked_bytes
    assert result["loss"] == pytest.approx(nll / tokens, rel=1e-4)
    assert result["bits_per_byte"] == pytest.approx(nll / math.log(2) / masked_bytes, rel=1e-4)
    assert result["span_bits_per_byte"] == pytest.approx(span_nll / math.log(2) / masked_bytes, rel=1e-4)
    assert result["span_loss"] == pytest.approx(span_nll / result["masked_tokens"], rel=1e-4)
    assert 0 < span_nll < nll


def test_a_wrong_layout_changes_the_score(model):
    _, scores = model
    layouts = [("[NLU]", "prefix"), ("[S2S]", "prefix"), (None, "prefix"), ("[NLU]", "causal"), (None, "causal")]
    values = sorted(scores(*layout)["loss"] for layout in layouts)
    assert all(b - a > 1e-4 for a, b in itertools.pairwise(values)), values


def test_metrics_pool_tokens_and_average_languages():
    scores = {"aaa": {"loss": 2.0, "bits_per_byte": 1.0, "span_bits_per_byte": 0.5, "nll": 20.0, "target_tokens": 10},
              "bbb": {"loss": 4.0, "bits_per_byte": 3.0, "span_bits_per_byte": 1.5, "nll": 120.0,
                      "target_tokens": 30}}  # fmt: skip
    metrics = infilling_metrics(scores)
    assert metrics["eval/infilling/loss"] == pytest.approx(140.0 / 40)
    assert metrics["eval/infilling/bits_per_byte"] == pytest.approx(2.0)
    assert metrics["eval/infilling/span_bits_per_byte"] == pytest.approx(1.0)
    assert metrics["eval/bbb/infilling_bits_per_byte"] == 3.0 and metrics["eval/aaa/infilling_loss"] == 2.0
    assert infilling_metrics({}) == {}
