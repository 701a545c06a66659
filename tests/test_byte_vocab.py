"""The byte-level vocabulary: ByT5 layout, lossless on multi-byte UTF-8, reserved ids and sentinels in place."""

import pytest
import seqio
import tensorflow as tf

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary, load_byte_vocabulary

LANGS = ("pan_Guru", "amh_Ethi", "zho_Hans")
MULTI_BYTE = [
    "ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਪੈਦਾ ਹੋਏ ਹਨ",  # Gurmukhi: 3-byte characters, combining vowel signs
    "የሰው ልጅ ሁሉ ሲወለድ ነጻና በክብርና በመብትም እኩልነት ያለው ነው።",  # Ethiopic
    "人人生而自由，在尊严和权利上一律平等。",  # CJK
    "emoji 😀👍🏽 and a flag 🇵🇰, Gothic 𐌰𐌱𐌲, rare Han 𠀋",  # 4-byte characters, modifiers, ZWJ-free
    "👩‍👩‍👧 café naïve e\u0301",  # zero-width joiner sequence, decomposed accent
]


@pytest.fixture(scope="module")
def byte_vocabulary():
    return ReservedByteVocabulary(vocab_lib.reserved_tokens(LANGS, ("<summarize>",)), num_sentinels=100)


def test_byt5_layout(byte_vocabulary):
    v = byte_vocabulary
    assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
    assert v.encode("A") == [ord("A") + 3]
    assert v.encode("\x00\x7f") == [3, 0x7F + 3]
    assert v.encode("é") == [0xC3 + 3, 0xA9 + 3]
    reserved = len(vocab_lib.MODE_TOKENS) + len(LANGS) + 1
    assert v.vocab_size == 3 + 256 + reserved + 100


@pytest.mark.parametrize("text", MULTI_BYTE)
def test_round_trip_on_multi_byte_utf8(byte_vocabulary, text):
    ids = byte_vocabulary.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    assert all(3 <= i < 259 for i in ids)
    assert byte_vocabulary.decode(ids) == text
    # The tf.data path that seqio's tokenize preprocessor uses agrees with the Python one.
    tf_ids = byte_vocabulary.encode_tf(tf.constant(text)).numpy().tolist()
    assert tf_ids == ids
    assert byte_vocabulary.decode_tf(tf.constant(ids)).numpy().decode("utf-8") == text


def test_reserved_ids_sit_below_the_sentinels(byte_vocabulary):
    v = byte_vocabulary
    expected = list(vocab_lib.MODE_TOKENS) + [vocab_lib.language_tag(lang) for lang in LANGS] + ["<summarize>"]
    ids = [vocab_lib.reserved_id(v, token) for token in expected]
    assert ids == list(range(259, 259 + len(expected)))
    sentinels = [vocab_lib.sentinel_id(v, i) for i in range(100)]
    assert sentinels[0] == v.vocab_size - 1 and sentinels[-1] == 259 + len(expected)
    assert not set(ids) & set(sentinels)
    with pytest.raises(KeyError, match="not a reserved token"):
        vocab_lib.reserved_id(v, "<2eng_Latn>")
    with pytest.raises(IndexError, match="100 sentinels"):
        vocab_lib.sentinel_id(v, 100)


def test_text_never_encodes_to_reserved_ids_and_decoding_drops_them(byte_vocabulary):
    v = byte_vocabulary
    nlu, tag = vocab_lib.reserved_id(v, "[NLU]"), vocab_lib.reserved_id(v, "<2pan_Guru>")
    assert max(v.encode("[NLU] <2pan_Guru> <extra_id_0>")) < 259
    assert v.decode([nlu, tag, *v.encode("ਹਨ"), vocab_lib.sentinel_id(v, 0)]) == "ਹਨ"


def test_works_in_a_seqio_tokenize_preprocessor(byte_vocabulary):
    dataset = tf.data.Dataset.from_tensors({"targets": "ሰላም 😀"})
    features = {"targets": seqio.Feature(byte_vocabulary)}
    (example,) = list(seqio.preprocessors.tokenize(dataset, features).as_numpy_iterator())
    assert example["targets"].tolist() == [b + 3 for b in "ሰላም 😀".encode("utf-8")]


def test_stored_and_loaded_through_prepare_vocabulary(tmp_path):
    config = vocab_lib.VocabularyConfig(kind="bytes", num_sentinels=7, task_tags=("<qa>",))
    texts = {"pan": iter(()), "yor_Latn": iter(())}  # a byte vocabulary reads only the languages
    vocabulary = vocab_lib.prepare_vocabulary(tmp_path, config, texts, tag_languages=("eng_Latn",))
    path = tmp_path / vocab_lib.vocabulary_file(config)
    assert path.name == "bytes.json"
    assert vocabulary.vocab_size == 259 + 3 + 3 + 1 + 7
    assert vocab_lib.reserved_id(vocabulary, "<2pan_Guru>") == 262  # codes are normalised ("pan" -> pan_Guru)
    assert vocab_lib.reserved_id(vocabulary, "<2eng_Latn>") == 264 and vocab_lib.reserved_id(vocabulary, "<qa>") == 265
    assert vocab_lib.load_vocabulary(path, 7) == vocabulary
    assert load_byte_vocabulary(path) == vocabulary
    with pytest.raises(ValueError, match="has 7 sentinels but 100"):
        vocab_lib.load_vocabulary(path, 100)
    with pytest.raises(ValueError, match="holds a bytes vocabulary"):
        vocab_lib.prepare_vocabulary(tmp_path, vocab_lib.VocabularyConfig(vocab_size=300), {"pan": ["x"]})


def test_bad_byte_vocabulary_input(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        ReservedByteVocabulary(["[NLU]", "[NLU]"])
    with pytest.raises(ValueError, match="kind="):
        vocab_lib.VocabularyConfig(kind="chars")
    bad = tmp_path / "bytes.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a lowres byte vocabulary"):
        load_byte_vocabulary(bad)
