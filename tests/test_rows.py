"""lowres.data.streams.rows: NumPy rows equal, element for element, to seqio's converters via tf.data."""

from __future__ import annotations

import ast
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import seqio
import tensorflow as tf

from lowres.data.streams import rows as rows_lib
from lowres.data.streams.rows import RowConverter
from lowres.errors import ConfigError, DataError
from lowres.models.architecture import ARCHITECTURES, CausalDecoderFeatureConverter

EOS = 1
ENC_DEC = ARCHITECTURES["encoder_decoder"]
DECODER_ONLY = ARCHITECTURES["decoder_only"]


def converter(name: str, pack: bool) -> seqio.FeatureConverter:
    """The production converters (Architecture.feature_converter), plus a loss-on-everything prefix LM."""
    if name == "enc_dec":
        return ENC_DEC.feature_converter(pack=pack)
    if name == "prefix":
        return DECODER_ONLY.feature_converter(pack=pack, decoder_attention="prefix")
    if name == "causal":
        return DECODER_ONLY.feature_converter(pack=pack, decoder_attention="causal")
    if name == "prefix_all_loss":
        return seqio.PrefixLMFeatureConverter(pack=pack, loss_on_targets_only=False)
    raise ValueError(name)


def seqio_features(conv, examples, lengths) -> dict[str, np.ndarray]:
    """seqio's own converter over `examples` (in order) through tf.data, rows stacked to [B, L]."""

    def gen():
        for inputs, targets in examples:
            yield {"inputs": np.asarray(inputs, np.int32), "targets": np.asarray(targets, np.int32)}

    spec = {k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")}
    ds = conv(tf.data.Dataset.from_generator(gen, output_signature=spec), lengths)
    out = list(ds.as_numpy_iterator())
    return {k: np.stack([o[k] for o in out]) for k in out[0]}


def seqio_groups(conv, examples, lengths) -> list[list]:
    """Our rows, grouped as seqio groups them: its packer runs over padded batches of
    max(packed feature lengths) examples and flushes the open row after each; within one, greedy in order."""
    if not conv.pack:
        return [[e] for e in examples]
    rc = RowConverter.for_converter(conv, lengths)
    chunk = max(rc.capacity)
    groups = []
    for start in range(0, len(examples), chunk):
        part = examples[start : start + chunk]
        packed = rc.pack(part, num_rows=len(part))
        assert packed.num_placed == len(part)
        groups.extend(packed.rows)
    return groups


def random_example(rng, max_inputs, max_targets, min_inputs=1):
    n_in = int(rng.integers(min_inputs, max_inputs + 1))
    n_tg = int(rng.integers(1, max_targets + 1))

    def seq(n):
        return np.append(rng.integers(2, 500, max(n - 1, 0)), EOS)[:n].astype(np.int32) if n else np.zeros(0, np.int32)

    return seq(n_in), seq(n_tg)


def stream(rng, lengths, num, empty_inputs=False, edge=True):
    """Varied examples: random lengths, plus length-1 targets (EOS only), inputs exactly filling,
    targets exactly filling, both filling, and (decoder-only / unpacked) empty inputs."""
    I, T = lengths["inputs"], lengths["targets"]
    examples = [random_example(rng, I, T, min_inputs=0 if empty_inputs else 1) for _ in range(num)]
    if edge:

        def fill(n):
            return np.append(np.full(n - 1, 7, np.int32), EOS).astype(np.int32)

        specials = [(fill(3), fill(1)), (fill(I), fill(2)), (fill(2), fill(T)), (fill(I), fill(T)), (fill(1), fill(1))]
        if empty_inputs:
            specials += [(np.zeros(0, np.int32), fill(4)), (np.zeros(0, np.int32), fill(1)), ([], fill(T))]
        for k, special in enumerate(specials):
            examples.insert((k * 7) % (len(examples) + 1), special)
    return examples


def assert_same(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]):
    assert sorted(ours) == sorted(theirs)
    for k, expected in theirs.items():
        assert ours[k].dtype == np.int32 == expected.dtype, k
        assert ours[k].shape == expected.shape, (k, ours[k].shape, expected.shape)
        np.testing.assert_array_equal(ours[k], expected, err_msg=k)


CASES = [
    # (converter, pack, lengths, empty inputs allowed)
    ("enc_dec", False, {"inputs": 12, "targets": 9}, True),
    ("enc_dec", True, {"inputs": 12, "targets": 9}, False),
    ("enc_dec", True, {"inputs": 5, "targets": 16}, False),
    ("prefix", False, {"inputs": 10, "targets": 7}, True),
    ("prefix", True, {"inputs": 10, "targets": 7}, True),
    ("prefix_all_loss", True, {"inputs": 6, "targets": 6}, True),
    ("causal", False, {"inputs": 8, "targets": 8}, True),
    ("causal", True, {"inputs": 8, "targets": 8}, True),
    ("causal", True, {"inputs": 0, "targets": 12}, True),  # a pure LM: every example has empty inputs
]


@pytest.mark.parametrize(
    "name,pack,lengths,empty_inputs",
    CASES,
    ids=[f"{n}-{'packed' if p else 'unpacked'}-{ln['inputs']}+{ln['targets']}" for n, p, ln, _ in CASES],
)
def test_rows_equal_seqio(name, pack, lengths, empty_inputs):
    rng = np.random.default_rng(zlib.crc32(f"{name} {pack} {lengths}".encode()))
    conv = converter(name, pack)
    if lengths["inputs"] == 0:
        examples = [(np.zeros(0, np.int32), random_example(rng, 1, 12)[1]) for _ in range(40)]
    else:
        # More examples than seqio's packing window (max feature length), so rows cross a flush.
        examples = stream(rng, lengths, 3 * sum(lengths.values()), empty_inputs=empty_inputs)
    rc = RowConverter.for_converter(conv, lengths)
    groups = seqio_groups(conv, examples, lengths)
    ours = rc.rows(groups)
    theirs = seqio_features(conv, examples, lengths)
    assert_same(ours, theirs)
    assert list(ours) == list(rc.features)
    assert rc.feature_lengths == dict(conv.get_model_feature_lengths(lengths))
    if pack:  # the comparison really packs: some rows hold several examples
        assert max(len(g) for g in groups) >= 2
        assert len(groups) < len(examples)


def test_pack_matches_seqio_within_one_window():
    """Without seqio's flush, `pack` alone reproduces seqio's grouping of a short stream."""
    lengths = {"inputs": 40, "targets": 30}
    rng = np.random.default_rng(3)
    examples = [random_example(rng, 12, 9) for _ in range(30)]  # fewer than max(40, 30) examples
    conv = converter("enc_dec", True)
    rc = RowConverter.for_converter(conv, lengths)
    packed = rc.pack(examples, num_rows=len(examples))
    assert packed.num_placed == len(examples)
    assert_same(rc.rows(packed.rows), seqio_features(conv, examples, lengths))


def test_docstring_examples():
    """seqio's own documented examples."""
    ex = [([7, 8, 5, 1], [3, 9, 1]), ([8, 4, 9, 3, 1], [4, 1])]
    rc = RowConverter.for_converter(seqio.EncDecFeatureConverter(pack=True), {"inputs": 10, "targets": 7})
    out = {k: v[0].tolist() for k, v in rc.rows([ex]).items()}
    assert out == {
        "encoder_input_tokens": [7, 8, 5, 1, 8, 4, 9, 3, 1, 0],
        "encoder_segment_ids": [1, 1, 1, 1, 2, 2, 2, 2, 2, 0],
        "encoder_positions": [0, 1, 2, 3, 0, 1, 2, 3, 4, 0],
        "decoder_target_tokens": [3, 9, 1, 4, 1, 0, 0],
        "decoder_input_tokens": [0, 3, 9, 0, 4, 0, 0],
        "decoder_loss_weights": [1, 1, 1, 1, 1, 0, 0],
        "decoder_segment_ids": [1, 1, 1, 2, 2, 0, 0],
        "decoder_positions": [0, 1, 2, 0, 1, 0, 0],
    }
    rc = RowConverter.for_converter(seqio.PrefixLMFeatureConverter(pack=True), {"inputs": 7, "targets": 8})
    out = {k: v[0].tolist() for k, v in rc.rows([ex]).items()}
    assert out == {
        "decoder_target_tokens": [7, 8, 5, 1, 3, 9, 1, 8, 4, 9, 3, 1, 4, 1, 0],
        "decoder_input_tokens": [0, 7, 8, 5, 1, 3, 9, 0, 8, 4, 9, 3, 1, 4, 0],
        "decoder_loss_weights": [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0],
        "decoder_positions": [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0],
        "decoder_segment_ids": [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0],
        "decoder_causal_attention": [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
    }
    # Unpacked: the first padding position's decoder input is the shifted EOS, not 0.
    rc = RowConverter.for_converter(seqio.PrefixLMFeatureConverter(pack=False), {"inputs": 10, "targets": 4})
    out = {k: v[0].tolist() for k, v in rc.rows([[([9, 4, 6, 1], [3, 9, 1])]]).items()}
    assert out == {
        "decoder_target_tokens": [9, 4, 6, 1, 3, 9, 1, 0, 0, 0, 0, 0, 0, 0],
        "decoder_input_tokens": [0, 9, 4, 6, 1, 3, 9, 1, 0, 0, 0, 0, 0, 0],
        "decoder_loss_weights": [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        "decoder_causal_attention": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    }


@pytest.mark.parametrize("pack", [True, False])
def test_bos_id_matches_seqio(pack):
    lengths = {"inputs": 6, "targets": 8}
    examples = [([5, 1], [3, 1]), ([6, 1], [4, 4, 1]), ([2, 2, 2, 2, 2, 1], [9, 1])]
    for conv in (
        seqio.EncDecFeatureConverter(pack=pack, bos_id=7),
        seqio.PrefixLMFeatureConverter(pack=pack, bos_id=7),
    ):
        rc = RowConverter.for_converter(conv, lengths)
        assert_same(rc.rows(seqio_groups(conv, examples, lengths)), seqio_features(conv, examples, lengths))


def test_causal_converter_drops_causal_attention():
    rc = RowConverter.for_converter(CausalDecoderFeatureConverter(pack=True), {"inputs": 4, "targets": 4})
    assert "decoder_causal_attention" not in rc.features
    assert rc.capacity == (8,)
    out = rc.rows([[([], [5, 1]), ([3, 1], [4, 1])]], num_rows=3)
    assert set(out) == {"decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights",
                        "decoder_segment_ids", "decoder_positions"}  # fmt: skip
    assert out["decoder_loss_weights"][0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert all(v.shape == (3, 8) and v.dtype == np.int32 for v in out.values())
    assert not any(v[1:].any() for v in out.values())  # the padded-out rows are all zeros


# --------------------------------------------------------------------------------- lengths, packing


def test_example_lengths_and_fits():
    ed = RowConverter.for_converter(converter("enc_dec", True), {"inputs": 8, "targets": 6})
    assert ed.capacity == (8, 6)
    assert ed.example_lengths(([4, 1], [5, 5, 1])) == (2, 3)
    assert ed.example_lengths({"inputs": [4, 1], "targets": [1]}) == (2, 1)
    row = [([4, 4, 4, 1], [5, 1]), ([4, 1], [5, 5, 1])]
    assert ed.fits(row, ([4, 1], [1]))
    assert not ed.fits(row, ([4, 4, 4, 1], [1]))  # encoder side full
    assert not ed.fits(row, ([1], [5, 5, 1]))  # decoder side full
    lm = RowConverter.for_converter(converter("prefix", True), {"inputs": 8, "targets": 6})
    assert lm.capacity == (14,)
    assert lm.example_lengths(([4, 1], [5, 5, 1])) == (5,)
    assert lm.fits(row, ([4, 1], [1]))  # 6 + 5 + 3 = 14: exactly full
    assert not lm.fits(row, ([4, 1], [5, 1]))  # the inputs + targets side counts both
    unpacked = RowConverter.for_converter(converter("enc_dec", False), {"inputs": 8, "targets": 6})
    assert unpacked.fits([], ([4, 1], [1]))
    assert not unpacked.fits([([4, 1], [1])], ([4, 1], [1]))


def test_pack_is_greedy_in_order_and_reports_placed():
    rc = RowConverter.for_converter(converter("enc_dec", True), {"inputs": 6, "targets": 6})

    def ex(n):
        return [9] * (n - 1) + [1], [1]

    examples = [ex(4), ex(3), ex(2), ex(1), ex(6), ex(5), ex(2)]
    packed = rc.pack(examples, num_rows=2)
    # ex(2) would fit in the first row, but rows are filled in order: never reordered.
    assert [[len(e[0]) for e in row] for row in packed.rows] == [[4], [3, 2, 1]]
    assert packed.num_placed == 3 + 1
    packed = rc.pack(examples, num_rows=10)
    assert [[len(e[0]) for e in row] for row in packed.rows] == [[4], [3, 2, 1], [6], [5]] + [[2]]
    assert packed.num_placed == len(examples)
    assert rc.pack([], num_rows=4) == rows_lib.Packed([], 0)
    unpacked = RowConverter.for_converter(converter("prefix", False), {"inputs": 6, "targets": 6})
    packed = unpacked.pack(examples, num_rows=3)
    assert packed.rows == [[e] for e in examples[:3]] and packed.num_placed == 3


def test_pack_then_rows_fills_a_batch():
    lengths = {"inputs": 64, "targets": 64}
    rng = np.random.default_rng(0)
    examples = [random_example(rng, 20, 20) for _ in range(200)]
    rc = RowConverter.for_converter(converter("enc_dec", True), lengths)
    packed = rc.pack(examples, num_rows=8)
    assert len(packed.rows) == 8 and 0 < packed.num_placed < len(examples)
    assert [e for row in packed.rows for e in row] == examples[: packed.num_placed]
    batch = rc.rows(packed.rows)
    # No token lost: every placed example's tokens are in the batch.
    n_in = sum(len(e[0]) for e in examples[: packed.num_placed])
    n_tg = sum(len(e[1]) for e in examples[: packed.num_placed])
    assert (batch["encoder_segment_ids"] > 0).sum() == n_in
    assert batch["decoder_loss_weights"].sum() == n_tg
    # The next example did not fit the last row.
    assert not rc.fits(packed.rows[-1], examples[packed.num_placed])


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("name", ["enc_dec", "prefix", "causal"])
@pytest.mark.parametrize("pack", [True, False])
def test_nothing_is_truncated(name, pack):
    rc = RowConverter.for_converter(converter(name, pack), {"inputs": 4, "targets": 3})
    too_long_inputs = ([9, 9, 9, 9, 1], [1])  # an LM row would have room (5 + 1 <= 7), but seqio refuses it too
    too_long_targets = ([1], [9, 9, 9, 1])
    for bad in (too_long_inputs, too_long_targets):
        with pytest.raises(DataError, match="nothing is truncated"):
            rc.example_lengths(bad)
        with pytest.raises(DataError, match="nothing is truncated"):
            rc.rows([[bad]])
        with pytest.raises(DataError, match="nothing is truncated"):
            rc.pack([bad], num_rows=1)
    if pack:  # each example fits, but together they overflow the row
        with pytest.raises(DataError, match="nothing is truncated"):
            rc.rows([[([9, 9, 1], [9, 1]), ([9, 9, 1], [9, 1])]])
    else:
        with pytest.raises(DataError, match="one per row"):
            rc.rows([[([1], [1]), ([1], [1])]])


def test_seqio_also_refuses_too_long_inputs():
    """seqio raises (not truncates) for an over-long feature, even for the prefix LM with room left."""
    conv = converter("prefix", True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        seqio_features(conv, [([9, 9, 9, 9, 1], [1])], {"inputs": 4, "targets": 3})


def test_refuses_what_seqio_mangles():
    """Each case seqio lays out wrongly (shown on seqio's real output) raises DataError here."""
    lengths = {"inputs": 5, "targets": 5}
    # A pad id inside an example: seqio's packer measures an example by its non-zero count and cuts it.
    theirs = seqio_features(converter("enc_dec", True), [([5, 0, 1], [3, 1])], lengths)
    assert theirs["encoder_input_tokens"][0].tolist() == [5, 0, 0, 0, 0]
    for name in ("enc_dec", "prefix"):
        for pack in (True, False):
            rc = RowConverter.for_converter(converter(name, pack), lengths)
            with pytest.raises(DataError, match="pad id 0"):
                rc.rows([[([5, 0, 1], [3, 1])]])
            with pytest.raises(DataError, match="pad id 0"):
                rc.rows([[([5, 1], [3, 0, 1])]])
    # Empty targets: seqio's prefix LM stand-in target misaligns the next packed example's masks.
    examples = [([5, 1], []), ([6, 6, 1], [7, 1])]
    theirs = seqio_features(converter("prefix", True), examples, lengths)
    assert theirs["decoder_loss_weights"][0, 7] == 1 and theirs["decoder_segment_ids"][0, 7] == 0  # loss on padding
    for name in ("enc_dec", "prefix", "causal"):
        rc = RowConverter.for_converter(converter(name, True), lengths)
        with pytest.raises(DataError, match="empty targets"):
            rc.rows([examples])
    # Empty inputs in a packed encoder-decoder row: later encoder segment ids skip it.
    examples = [([5, 1], [3, 1]), ([], [4, 1]), ([6, 1], [7, 1])]
    theirs = seqio_features(converter("enc_dec", True), examples, {"inputs": 8, "targets": 8})
    assert theirs["encoder_segment_ids"][0, 2] == 2 and theirs["decoder_segment_ids"][0, 4] == 3  # ex 3: 2 vs 3
    rc = RowConverter.for_converter(converter("enc_dec", True), {"inputs": 8, "targets": 8})
    with pytest.raises(DataError, match="empty inputs"):
        rc.rows([examples])
    with pytest.raises(DataError, match="empty inputs"):
        rc.pack(examples, num_rows=3)
    # ... while unpacked (and for the decoder-only converters) empty inputs are fine.
    RowConverter.for_converter(converter("enc_dec", False), lengths).rows([[([], [4, 1])]])
    RowConverter.for_converter(converter("prefix", True), lengths).rows([[([], [4, 1])]])


def test_unsupported_converters():
    lengths = {"inputs": 4, "targets": 4}
    for conv in (
        seqio.PrefixSuffixLMFeatureConverter(pack=True),
        seqio.LMFeatureConverter(pack=True),
        seqio.EncDecFeatureConverter(
            pack=False, passthrough_features={"idx": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32)}
        ),
    ):
        with pytest.raises(ConfigError):
            RowConverter.for_converter(conv, lengths)
    with pytest.raises(ConfigError):
        RowConverter.for_converter(seqio.EncDecFeatureConverter(pack=True), {"targets": 4})


def test_data_layer_does_not_import_models():
    tree = ast.parse(Path(rows_lib.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m.startswith("lowres.models") for m in imported), imported


# ------------------------------------------------------------------------------------- performance


@pytest.mark.parametrize("name", ["enc_dec", "prefix"])
def test_batch_of_32_rows_is_fast(name):
    lengths = {"inputs": 128, "targets": 128} if name == "prefix" else {"inputs": 256, "targets": 256}
    rng = np.random.default_rng(1)
    examples = [random_example(rng, 40, 40) for _ in range(2000)]
    rc = RowConverter.for_converter(converter(name, True), lengths)
    packed = rc.pack(examples, num_rows=32)
    rc.rows(packed.rows)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        packed = rc.pack(examples, num_rows=32)
        batch = rc.rows(packed.rows)
        best = min(best, time.perf_counter() - start)
    assert batch["decoder_target_tokens"].shape == (32, 256)
    assert best < 0.032, f"{best * 1e3:.1f} ms for 32 rows"  # < 1 ms a row, with a wide margin kept
