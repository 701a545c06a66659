"""The SentencePiece vocabulary: lossless on every script of the corpus, reserved ids in place."""

import pytest

from lowres.data import vocab as vocab_lib


def test_round_trip_on_every_language_of_the_corpus(corpus, vocabulary):
    for lang in corpus.languages:
        for split in ("train", "validation"):
            for doc in corpus.mono_path(lang, split).read_text(encoding="utf-8").splitlines():
                assert vocabulary.decode(vocabulary.encode(doc)) == doc, (lang, doc[:60])


def test_unseen_script_falls_back_to_bytes_not_unk(vocabulary):
    text = "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ 𐌰𐌱𐌲 ꦗꦮ"  # Cherokee, Gothic, Javanese: absent from the corpus
    ids = vocabulary.encode(text)
    assert vocabulary.unk_id not in ids
    assert vocabulary.decode(ids) == text


def test_reserved_tokens_have_ids_and_never_come_from_text(corpus, vocabulary):
    ids = {vocab_lib.reserved_id(vocabulary, t) for t in vocab_lib.MODE_TOKENS}
    ids |= {vocab_lib.reserved_id(vocabulary, vocab_lib.language_tag(lang)) for lang in corpus.languages}
    assert len(ids) == len(vocab_lib.MODE_TOKENS) + len(corpus.languages)
    encoded = vocabulary.encode("[NLU] [S2S] <2pan_Guru> text")
    assert not ids & set(encoded)
    with pytest.raises(KeyError):
        vocab_lib.reserved_id(vocabulary, "hello")


def test_sentinels_sit_at_the_top_of_the_vocabulary(vocabulary):
    assert vocab_lib.sentinel_id(vocabulary, 0) == vocabulary.vocab_size - 1
    assert vocabulary.decode([vocab_lib.sentinel_id(vocabulary, 3)]) == "<extra_id_3>"
    with pytest.raises(IndexError):
        vocab_lib.sentinel_id(vocabulary, vocabulary.extra_ids)
