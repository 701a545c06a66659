"""Bits per byte: windows cover every token once, and the arithmetic matches a hand computation."""

import math

import pytest

from lowres.evaluation.bits_per_byte import (
    model_bits_per_byte,
    feature_batches,
    scoring_examples,
    unigram_byte_bits_per_byte,
)


def test_windows_cover_each_token_exactly_once_with_a_prefix():
    docs = [list(range(3, 3 + n)) for n in (1, 9, 25)]
    examples = scoring_examples(docs, inputs_length=6, targets_length=4, mode_id=99, eos_id=1)
    targets = [t for _, tgt in examples for t in tgt]
    assert targets == [t for doc in docs for t in doc + [1]]
    for inputs, tgt in examples:
        assert inputs[0] == 99 and inputs[-1] == 1 and len(inputs) <= 6 and len(tgt) <= 4
    # the second window of the 9-token document sees the 4 tokens before it
    assert examples[2] == ([99, 3, 4, 5, 6, 1], [7, 8, 9, 10])


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_feature_batches_score_every_target_once(architecture):
    examples = [([5, 1], [7, 8, 1]), ([5, 6, 1], [9, 1]), ([5, 1], [4, 4, 4, 4])]
    batches = list(feature_batches(examples, architecture, inputs_length=4, targets_length=5, batch_size=2))
    weights = sum(int(b["decoder_loss_weights"].sum()) for b in batches)
    assert weights == 3 + 2 + 4
    targets = [t for b in batches for row, w in zip(b["decoder_target_tokens"], b["decoder_loss_weights"])
               for t in row[w > 0]]
    assert sorted(targets) == sorted([7, 8, 1, 9, 1, 4, 4, 4, 4])


class CharVocab:
    """One token per character: makes token counts easy to compute by hand."""

    eos_id = 1

    def encode(self, text):
        return [ord(c) for c in text]


def test_bits_per_byte_matches_hand_computation():
    docs = {"xx": ["héllo", "wörld!"]}

    def one_bit_per_token(batch):
        return batch["decoder_loss_weights"].sum(axis=1) * math.log(2.0)

    result = model_bits_per_byte(one_bit_per_token, CharVocab(), docs, 8, 4, batch_size=2, mode_token=None)
    assert result == model_bits_per_byte(one_bit_per_token, CharVocab(), docs, 8, 4, "decoder_only", 2, None)
    tokens = len("héllo") + len("wörld!") + 2
    num_bytes = len("héllo".encode()) + len("wörld!".encode()) + 2
    assert result["xx"]["tokens"] == tokens and result["xx"]["bytes"] == num_bytes
    assert result["xx"]["bits_per_byte"] == pytest.approx(tokens / num_bytes)
    # one bit per token is ln 2 nats per token; two documents of one word each, plus one EOS word apiece
    assert result["xx"]["nll_per_token"] == pytest.approx(math.log(2.0))
    assert result["xx"]["words"] == 4 and result["xx"]["nll_per_word"] == pytest.approx(tokens * math.log(2.0) / 4)


def test_unigram_baseline_is_entropy_for_a_matching_distribution():
    # 'ab' repeated: with add-one smoothing over 256 bytes the rate approaches log2(3) as data grows
    train = ["ab" * 5000]
    bpb = unigram_byte_bits_per_byte(train, ["ab" * 10])
    assert bpb == pytest.approx(-(20 / 21) * math.log2(5001 / 10257) - (1 / 21) * math.log2(2 / 10257), rel=1e-6)
