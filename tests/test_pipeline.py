"""Packed batches of the UL2 mixture for both architectures, and the mixture's empirical denoiser shares."""

import numpy as np
import pytest
import seqio

from lowres.data.tasks import objectives
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.config import DataConfig
from lowres.models.architecture import architecture_for
from lowres.data.streams.pipeline import training_batches
from lowres.models.decoder_only import decoder_mask
from lowres.data.tasks.builtin import register_builtin_mixture

LENGTHS = {"inputs": 32, "targets": 96}  # short examples: several packed per 128-token row


@pytest.fixture(scope="module")
def ul2_mixture(corpus, vocabulary):
    return register_builtin_mixture(corpus, vocabulary, "ul2", languages=["yor"], shuffle_buffer_size=32)


@pytest.fixture(scope="module")
def prefix_batches(ul2_mixture):
    return _batches(ul2_mixture, "prefix")


def _batches(mixture, attention, num_batches=2):
    config = DataConfig(objective="ul2", inputs_length=LENGTHS["inputs"], targets_length=LENGTHS["targets"],
                        batch_size=8, shuffle_buffer_size=32, decoder_attention=attention)
    stream = training_batches(mixture, config, seqio.ShardInfo(0, 1),
                              converter=architecture_for("decoder_only").feature_converter(config.pack, attention))
    return [next(stream) for _ in range(num_batches)]


def _segments(row_segment_ids):
    return [np.flatnonzero(row_segment_ids == s) for s in np.unique(row_segment_ids) if s != 0]


def test_packed_prefix_lm_batches_mask_loss_and_mode_tokens(prefix_batches, vocabulary):
    modes = {vocab_lib.reserved_id(vocabulary, m): m for m in vocab_lib.MODE_TOKENS}
    first_sentinel = vocabulary.vocab_size - vocabulary.extra_ids
    seen_modes, packed_rows = set(), 0
    for batch in prefix_batches:
        tokens, segment_ids = batch["decoder_target_tokens"], batch["decoder_segment_ids"]
        weights, prefix = batch["decoder_loss_weights"], batch["decoder_causal_attention"]
        length = tokens.shape[1]
        mask = np.asarray(decoder_mask(length, segment_ids, prefix))[:, 0]  # the model's own mask
        # Loss weights: zero on padding.
        assert not weights[segment_ids == 0].any()
        for row in range(len(tokens)):
            segments = _segments(segment_ids[row])
            packed_rows += len(segments) > 1
            for positions in segments:
                seg_tokens, seg_weights = tokens[row, positions], weights[row, positions]
                num_inputs = int((seg_weights == 0).sum())
                # Inputs ([mode] + inputs + EOS) come first with zero loss weight, then the targets with weight 1.
                np.testing.assert_array_equal(seg_weights, np.arange(len(positions)) >= num_inputs)
                # The prefix covers the inputs plus the position that predicts the first target (seqio's convention).
                np.testing.assert_array_equal(prefix[row, positions], np.arange(len(positions)) <= num_inputs)
                # Mode token exactly once, first, and it matches the denoiser: S has no sentinels, R and X do.
                mode = modes[int(seg_tokens[0])]
                seen_modes.add(mode)
                assert np.isin(seg_tokens, list(modes)).sum() == 1
                inputs, targets = seg_tokens[:num_inputs], seg_tokens[num_inputs:]
                sentinels_in, sentinels_tg = (inputs >= first_sentinel).sum(), (targets >= first_sentinel).sum()
                assert (sentinels_in == 0) == (mode == "[S2S]") and sentinels_in == sentinels_tg
        # Attention: bidirectional only inside a segment's prefix, causal otherwise, never across segments.
        same_segment = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] != 0)
        earlier = np.tril(np.ones((length, length), bool))[None]
        both_in_prefix = (prefix[:, :, None] == 1) & (prefix[:, None, :] == 1)
        real = segment_ids != 0
        np.testing.assert_array_equal(mask[real], (same_segment & (earlier | both_in_prefix))[real])
    assert seen_modes == set(vocab_lib.MODE_TOKENS) and packed_rows > 0


def test_fully_causal_variant_keeps_the_sequences_and_drops_the_prefix(ul2_mixture, prefix_batches):
    prefix, causal = prefix_batches[0], _batches(ul2_mixture, "causal", 1)[0]
    assert "decoder_causal_attention" not in causal and "decoder_causal_attention" in prefix
    for key in causal:
        np.testing.assert_array_equal(causal[key], prefix[key])
    length = causal["decoder_target_tokens"].shape[1]
    mask = np.asarray(decoder_mask(length, causal["decoder_segment_ids"], causal.get("decoder_causal_attention")))
    assert not np.triu(mask[:, 0], k=1).any(), "no position sees a later one"
    with pytest.raises(ValueError, match="decoder_attention"):
        DataConfig(decoder_attention="bidirectional")


def _signature(inputs, targets, first_sentinel):
    return int(inputs[0]), int((inputs >= first_sentinel).sum()), len(inputs), len(targets)


def test_ul2_mixture_denoiser_shares_match_the_rates(corpus, vocabulary):
    """10k examples from the registered seqio mixture; each full chunk's shape identifies its denoiser."""
    lengths = {"inputs": 128, "targets": 128}
    mixture = register_builtin_mixture(corpus, vocabulary, "ul2", languages=["eng"], shuffle_buffer_size=64)
    first_sentinel = vocabulary.vocab_size - vocabulary.extra_ids
    expected = {}
    for denoiser, rate in objectives.objective("ul2"):
        mode_id = vocab_lib.reserved_id(vocabulary, denoiser.mode_token)
        if isinstance(denoiser, objectives.PrefixLM):
            expected[(mode_id, 0)] = (denoiser.name, rate)
            continue
        raw, _ = objectives.span_corruption_lengths(lengths["inputs"], denoiser.noise_density,
                                                    denoiser.mean_span_length, 2)
        noise = objectives._num_noise(raw, denoiser.noise_density)
        spans = objectives._num_spans(raw, noise, denoiser.mean_span_length)
        key = (mode_id, spans, raw - noise + spans + 2, noise + spans + 1)  # + mode and EOS / + EOS
        assert key not in expected, "full-chunk shapes must tell the denoisers apart"
        expected[key] = (denoiser.name, rate)
    dataset = seqio.get_mixture_or_task(mixture).get_dataset(lengths, "train", shuffle=True, seed=0, num_epochs=None)
    counts, unmatched, total = dict.fromkeys(expected, 0), 0, 10_000
    for batch in dataset.take(total).padded_batch(1000).as_numpy_iterator():
        for inputs, targets in zip(batch["inputs"], batch["targets"]):
            inputs, targets = inputs[inputs > 0], targets[targets > 0]
            key = _signature(inputs, targets, first_sentinel)
            key = key[:2] if key[1] == 0 else key
            if key in counts:
                counts[key] += 1
            else:  # the shorter last chunk of a pass over the corpus
                unmatched += 1
    assert unmatched < 0.03 * total
    matched = sum(counts.values())
    for key, (name, rate) in expected.items():
        assert abs(counts[key] / matched - rate) < 0.02, (name, counts[key] / matched, rate)
