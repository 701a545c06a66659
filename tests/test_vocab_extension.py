"""Vocabulary extension: new pieces appended, every old id mapped, embeddings resized by model surgery."""

import numpy as np
import pytest

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.extension import extend_vocabulary, train_extension
from lowres.models import surgery

ENGLISH = "all human beings are born free and equal in dignity and rights they are endowed with reason"
AMHARIC = "የሰው ልጅ ሁሉ ሲወለድ ነጻና በክብርና በመብትም እኩልነት ያለው ነው። የተፈጥሮ ማስተዋልና ሕሊና ስላለው"
SENTINELS = 10


def sentences(words: str, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocabulary = words.split()
    return [" ".join(rng.choice(vocabulary, size=rng.integers(4, 10))) for _ in range(count)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("extension")
    config = vocab_lib.VocabularyConfig(vocab_size=400, num_sentinels=SENTINELS)
    base = vocab_lib.train_vocabulary({"eng_Latn": sentences(ENGLISH, 200, 0)}, directory / "base.model", config)
    addition = vocab_lib.train_vocabulary({"amh_Ethi": sentences(AMHARIC, 200, 1)}, directory / "amh.model", config)
    extension = extend_vocabulary(base, addition, directory / "extended.model", num_sentinels=SENTINELS)
    return base, addition, extension


def test_old_ids_keep_their_pieces_and_sentinels_move_up(models):
    base, _, extension = models
    old = vocab_lib.load_vocabulary(base, SENTINELS)
    new = vocab_lib.load_vocabulary(extension.path, SENTINELS)
    added = len(extension.added_pieces)
    assert added > 20 and extension.new_vocab_size == new.vocab_size == old.vocab_size + added
    assert extension.old_vocab_size == old.vocab_size
    assert sorted(extension.old_to_new) == list(range(old.vocab_size))  # every old id, sentinels included
    old_pieces = old.vocab_size - SENTINELS
    for old_id in range(old_pieces):
        assert extension.old_to_new[old_id] == old_id
        assert new.tokenizer.id_to_piece(old_id) == old.tokenizer.id_to_piece(old_id)
    for i in range(SENTINELS):
        assert extension.old_to_new[vocab_lib.sentinel_id(old, i)] == vocab_lib.sentinel_id(new, i)
        assert new.decode([vocab_lib.sentinel_id(new, i)]) == f"<extra_id_{i}>"
    for offset, piece in enumerate(extension.added_pieces):
        assert new.tokenizer.id_to_piece(old_pieces + offset) == piece
    # Reserved ids keep working; the new language's tag came along as a control symbol.
    assert vocab_lib.reserved_id(new, "[NLU]") == vocab_lib.reserved_id(old, "[NLU]")
    assert vocab_lib.reserved_id(new, "<2amh_Ethi>") >= old_pieces
    id_map = extension.id_map
    assert len(id_map) == new.vocab_size and sum(x is None for x in id_map) == added


def test_extended_model_encodes_the_new_language_in_fewer_tokens_losslessly(models):
    base, _, extension = models
    old = vocab_lib.load_vocabulary(base, SENTINELS)
    new = vocab_lib.load_vocabulary(extension.path, SENTINELS)
    probe = sentences(AMHARIC, 20, 2)
    old_tokens = sum(len(old.encode(text)) for text in probe)
    new_tokens = sum(len(new.encode(text)) for text in probe)
    assert new_tokens < old_tokens / 2, (old_tokens, new_tokens)
    for text in probe + sentences(ENGLISH, 5, 3) + ["unseen ᏣᎳᎩ 😀"]:
        ids = new.encode(text)
        assert new.unk_id not in ids and new.decode(ids) == text


def test_new_pieces_decompose_into_old_ids(models):
    base, _, extension = models
    old = vocab_lib.load_vocabulary(base, SENTINELS)
    old_pieces = old.vocab_size - SENTINELS
    for new_id, pieces in extension.new_token_pieces.items():
        piece = extension.added_pieces[new_id - old_pieces]
        if piece == "<2amh_Ethi>":
            assert pieces == []  # a control symbol has no surface form
            continue
        assert pieces and all(0 <= i < old_pieces for i in pieces)
        surface = "".join(old.tokenizer.id_to_piece(i) for i in pieces)
        assert bytes_of(surface) == piece.encode("utf-8"), (piece, surface)


def bytes_of(pieces: str) -> bytes:
    """The UTF-8 bytes that concatenated SentencePiece pieces stand for (byte pieces are <0xNN>)."""
    import re

    out = b""
    for match in re.finditer(r"<0x([0-9A-F]{2})>|(.)", pieces, flags=re.S):
        out += bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2).encode("utf-8")
    return out


def test_model_surgery_resizes_embeddings_with_the_mapping(models):
    base, _, extension = models
    rng = np.random.default_rng(0)
    old_embed = rng.normal(size=(extension.old_vocab_size, 8)).astype(np.float32)
    old_kernel = rng.normal(size=(8, extension.old_vocab_size)).astype(np.float32)
    params = {"token_embed": {"embedding": old_embed}, "logits_kernel": old_kernel}
    resized = surgery.resize_params(
        params, extension.id_map, "mean_of_pieces", new_token_pieces=extension.new_token_pieces
    )
    embed, kernel = resized["token_embed"]["embedding"], resized["logits_kernel"]
    assert embed.shape == (extension.new_vocab_size, 8) and kernel.shape == (8, extension.new_vocab_size)
    for old_id, new_id in extension.old_to_new.items():
        np.testing.assert_array_equal(embed[new_id], old_embed[old_id])
        np.testing.assert_array_equal(kernel[:, new_id], old_kernel[:, old_id])
    for new_id, pieces in extension.new_token_pieces.items():
        expected = old_embed[pieces].mean(axis=0) if pieces else old_embed.mean(axis=0)
        np.testing.assert_allclose(embed[new_id], expected, rtol=1e-5, atol=1e-6)


def test_max_new_pieces_and_bad_input(models, tmp_path):
    base, addition, extension = models
    small = extend_vocabulary(base, addition, tmp_path / "small.model", num_sentinels=SENTINELS, max_new_pieces=5)
    assert len(small.added_pieces) == 6  # 5 pieces plus the language tag
    assert set(small.added_pieces) <= set(extension.added_pieces)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        extend_vocabulary(tmp_path / "missing.model", addition, tmp_path / "x.model")
    not_a_model = tmp_path / "text.model"
    not_a_model.write_text("hello")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        extend_vocabulary(not_a_model, addition, tmp_path / "x.model")
    bpe = vocab_lib.train_vocabulary(
        {"amh_Ethi": sentences(AMHARIC, 50, 4)}, tmp_path / "bpe.model",
        vocab_lib.VocabularyConfig(vocab_size=400, model_type="bpe"),
    )
    with pytest.raises(ValueError, match="same type"):
        extend_vocabulary(base, bpe, tmp_path / "x.model")
    assert not (tmp_path / "x.model").exists()


def test_bpe_models_extend_too(tmp_path):
    config = vocab_lib.VocabularyConfig(vocab_size=400, model_type="bpe", num_sentinels=SENTINELS)
    base = vocab_lib.train_vocabulary({"eng_Latn": sentences(ENGLISH, 100, 0)}, tmp_path / "base.model", config)
    extension = train_extension(base, {"amh_Ethi": sentences(AMHARIC, 100, 1)}, tmp_path / "extended.model", config)
    assert "<2amh_Ethi>" in extension.added_pieces
    old = vocab_lib.load_vocabulary(base, SENTINELS)
    new = vocab_lib.load_vocabulary(extension.path, SENTINELS)
    probe = sentences(AMHARIC, 10, 2)
    assert sum(len(new.encode(t)) for t in probe) < sum(len(old.encode(t)) for t in probe) / 2
    for text in probe + sentences(ENGLISH, 5, 3):
        assert new.decode(new.encode(text)) == text
        if text in probe:
            continue
        assert new.encode(text) == old.encode(text)  # added merges rank last: old text segments as before
