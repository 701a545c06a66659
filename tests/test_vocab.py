"""The SentencePiece vocabulary: lossless on every script of the corpus, reserved ids in place."""

import os

import pytest

from lowres.data.vocab import vocabulary as vocab_lib


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


# ---------------------------------------------------------------------------------------------
# Training from a mixture of languages, every script, fingerprints, the run directory.

# FLORES-like text: a handful of words per script (UDHR article 1), recombined into sentences.
SCRIPT_WORDS = {
    "vie_Latn": "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm quyền lợi",
    "pol_Latn": "Wszyscy ludzie rodzą się wolni równi pod względem swej godności swych praw żółć",
    "rus_Cyrl": "Все люди рождаются свободными и равными в своём достоинстве и правах",
    "ell_Grek": "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα",
    "arb_Arab": "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق وقد وهبوا عقلاً وضميرًا ٣٤",
    "heb_Hebr": "כל בני האדם נולדו בני חורין ושווים בערכם ובזכויותיהם",
    "hin_Deva": "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता प्राप्त है",
    "pan_Guru": "ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਪੈਦਾ ਹੋਏ ਹਨ ਅਤੇ ਇੱਜ਼ਤ ਅਧਿਕਾਰਾਂ ਵਿੱਚ ਬਰਾਬਰ",
    "ben_Beng": "সমস্ত মানুষ স্বাধীনভাবে সমান মর্যাদা এবং অধিকার নিয়ে জন্মগ্রহণ করে",
    "tam_Taml": "மனிதப் பிறவியினர் சகலரும் சுதந்திரமாகவே பிறக்கின்றனர் சமமானவர்கள்",
    "tha_Thai": "มนุษย์ ทั้งหลาย เกิดมา มีอิสระ และเสมอภาค กันใน เกียรติศักดิ์ และสิทธิ",
    "amh_Ethi": "የሰው ልጅ ሁሉ ሲወለድ ነጻና በክብርና በመብትም እኩልነት ያለው ነው።",
    "kat_Geor": "ყველა ადამიანი იბადება თავისუფალი და თანასწორი თავისი ღირსებითა და უფლებებით",
    "hye_Armn": "Բոլոր մարդիկ ծնվում են ազատ ու հավասար իրենց արժանապատվությամբ ու իրավունքներով",
    "zho_Hans": "人人 生而 自由 在 尊严 和 权利 上 一律 平等 他们 赋有 理性 良心",
    "kor_Hang": "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다",
    "jpn_Jpan": "すべての 人間は 生まれながらにして 自由であり かつ 尊厳と 権利とについて 平等である",
    "sin_Sinh": "සියලු මනුෂ්‍යයෝ නිදහස්ව උපත ලබා ඇත ගෞරවයෙන් හා අයිතිවාසිකම්වලින් සමාන වෙති",
    "mya_Mymr": "လူတိုင်း သည် တူညီ လွတ်လပ်သော ဂုဏ်သိက္ခာ ဖြင့်လည်းကောင်း",
    "khm_Khmr": "មនុស្ស ទាំងអស់ កើតមក មាន សេរីភាព និង សមភាព ក្នុង សិទ្ធិ",
}
NO_SPACES = {"tha_Thai", "zho_Hans", "jpn_Jpan"}  # written without spaces between words
# Characters the vocabulary never saw: Cherokee, Gothic, emoji (ZWJ), rare Han, Tifinagh, Ogham, combining accent.
UNSEEN = "ᏣᎳᎩ 𐌰𐌱𐌲 👩‍👩‍👧 𠀋龘 ⵜⴰⵎⴰⵣⵉⵖⵜ ᚛ᚑᚌᚐᚋ᚜ e\u0301"


def flores_like(lang: str, count: int, seed: int) -> list[str]:
    """`count` sentences of 4-9 words of `lang`, with digits and punctuation, FLORES style."""
    import random

    rng = random.Random(f"{lang}-{seed}")
    words = SCRIPT_WORDS[lang].split()
    joiner = "" if lang in NO_SPACES else " "
    sentences = []
    for i in range(count):
        picked = rng.choices(words, k=rng.randint(4, 9))
        sentences.append(joiner.join(picked) + f" {i * 7 % 1000}" + rng.choice([".", "!", "?", "،", "।"]))
    return sentences


@pytest.fixture(scope="module")
def every_script_vocab(tmp_path_factory):
    texts = {lang: flores_like(lang, 60, seed=0) for lang in SCRIPT_WORDS}
    path = tmp_path_factory.mktemp("scripts") / "spm.model"
    config = vocab_lib.VocabularyConfig(vocab_size=1500, num_sentinels=10, task_tags=("<translate>",))
    vocab_lib.train_vocabulary(texts, path, config, tag_languages=("chr_Cher",))
    return vocab_lib.load_vocabulary(path, config.num_sentinels), path


@pytest.mark.parametrize("lang", sorted(SCRIPT_WORDS))
def test_sentencepiece_round_trip_on_every_script(every_script_vocab, lang):
    vocabulary, _ = every_script_vocab
    held_out = flores_like(lang, 5, seed=1) + [flores_like(lang, 1, seed=2)[0] + " " + UNSEEN]
    for text in held_out:
        ids = vocabulary.encode(text)
        assert vocabulary.unk_id not in ids, text
        assert vocabulary.decode(ids) == text


def test_unseen_characters_use_byte_fallback(every_script_vocab):
    vocabulary, _ = every_script_vocab
    processor = vocabulary.tokenizer
    for char in UNSEEN.split():
        ids = vocabulary.encode(char)
        assert any(processor.is_byte(i) for i in ids), char
        assert vocabulary.unk_id not in ids and vocabulary.decode(ids) == char
    # Seen text needs (almost) no bytes: each script's characters made it into the vocabulary.
    seen = vocabulary.encode(flores_like("pan_Guru", 1, seed=3)[0])
    assert not any(processor.is_byte(i) for i in seen)


def test_trained_vocabulary_reserves_mode_language_and_task_tokens(every_script_vocab):
    vocabulary, _ = every_script_vocab
    tokens = [*vocab_lib.MODE_TOKENS, *(vocab_lib.language_tag(lang) for lang in SCRIPT_WORDS), "<2chr_Cher>",
              "<translate>"]
    ids = [vocab_lib.reserved_id(vocabulary, token) for token in tokens]
    assert ids == list(range(3, 3 + len(tokens)))  # control symbols follow pad, eos, unk in order
    assert not set(ids) & set(vocabulary.encode(" ".join(tokens)))
    assert vocab_lib.sentinel_id(vocabulary, 0) == vocabulary.vocab_size - 1


def test_temperature_sampling_matches_the_formula():
    texts = {"big": [f"big {i:06d}" for i in range(100)], "small": [f"sml {i:06d}" for i in range(10)]}
    # 10 bytes per sentence: sizes 1000 and 100 bytes; alpha 0.5 gives p_big = √1000 / (√1000 + √100).
    p_big = 1000**0.5 / (1000**0.5 + 100**0.5)
    sentences, counts = vocab_lib.sample_sentences(texts, alpha=0.5, max_sentences=10_000, seed=0)
    assert counts == {"big": round(p_big * 110), "small": round((1 - p_big) * 110)} == {"big": 84, "small": 26}
    assert len(sentences) == 110
    small = [s for s in sentences if s.startswith("sml")]
    assert len(small) == 26 and set(small) == set(texts["small"])  # 2 full passes + 6 drawn without replacement
    assert sorted(small.count(s) for s in texts["small"]) == [2] * 4 + [3] * 6
    big = [s for s in sentences if s.startswith("big")]
    assert len(set(big)) == 84  # subsampled without replacement
    # alpha 1 keeps the natural proportions, alpha 0 is uniform; the budget caps the total.
    assert vocab_lib.sample_sentences(texts, alpha=1.0)[1] == {"big": 100, "small": 10}
    assert vocab_lib.sample_sentences(texts, alpha=0.0, max_sentences=50)[1] == {"big": 25, "small": 25}
    assert vocab_lib.sample_sentences(texts, 0.5, seed=0) == (sentences, counts)  # deterministic
    # A language larger than the budget is read in full (its size counts) but only a reservoir is kept.
    many = {"big": [f"big {i:06d}" for i in range(1000)], "small": texts["small"]}
    sampled, counts = vocab_lib.sample_sentences(many, alpha=1.0, max_sentences=50)
    assert counts == {"big": round(1000 / 1010 * 50), "small": 1}
    assert len(set(sampled)) == 51 and any(int(s.split()[1]) >= 50 for s in sampled if s.startswith("big"))
    with pytest.raises(ValueError, match="no training text for \\['empty'\\]"):
        vocab_lib.sample_sentences({"big": texts["big"], "empty": ["", " "]})


def test_low_temperature_gives_the_small_language_its_own_pieces(tmp_path):
    texts = {"eng_Latn": flores_like("pol_Latn", 400, seed=0), "pan_Guru": flores_like("pan_Guru", 8, seed=0)}
    probe = flores_like("pan_Guru", 20, seed=5)
    lengths = {}
    for alpha in (1.0, 0.0):
        path = tmp_path / f"alpha{alpha}.model"
        vocab_lib.train_vocabulary(texts, path, vocab_lib.VocabularyConfig(vocab_size=400, temperature_alpha=alpha))
        vocabulary = vocab_lib.load_vocabulary(path, 0)
        lengths[alpha] = sum(len(vocabulary.encode(t)) for t in probe)
    assert lengths[0.0] < lengths[1.0], lengths


def test_training_twice_gives_byte_identical_files(tmp_path):
    """Same text and settings, same file: run directories stay comparable and resumable by fingerprint."""
    texts = {"pan_Guru": flores_like("pan_Guru", 30, seed=0), "eng_Latn": flores_like("pol_Latn", 30, seed=1)}
    config = vocab_lib.VocabularyConfig(vocab_size=400)
    paths = [vocab_lib.train_vocabulary(texts, tmp_path / f"run{i}" / "spm.model", config) for i in range(2)]
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_bad_vocabulary_settings_give_clear_errors(tmp_path):
    texts = {"pan_Guru": flores_like("pan_Guru", 10, seed=0)}
    small = vocab_lib.VocabularyConfig(vocab_size=260, grow_to_fit=False)
    with pytest.raises(ValueError, match=r"vocab_size=260 is too small for 1 language\(s\).*set vocab_size >= \d+"):
        vocab_lib.train_vocabulary(texts, tmp_path / "small.model", small)
    assert not (tmp_path / "small.model").exists()
    with pytest.raises(ValueError, match="repeat \\['\\[NLU\\]'\\]"):
        vocab_lib.reserved_tokens(["pan_Guru"], ["[NLU]"])
    with pytest.raises(ValueError, match="no whitespace"):
        vocab_lib.reserved_tokens([], ["<two words>"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vocab_lib.load_vocabulary(tmp_path / "missing.model")


def test_prepare_vocabulary_trains_once_then_reuses_the_file(tmp_path):
    config = vocab_lib.VocabularyConfig(vocab_size=400, num_sentinels=5)
    texts = {"pan_Guru": flores_like("pan_Guru", 30, seed=0)}
    first = vocab_lib.prepare_vocabulary(tmp_path, config, texts, tag_languages=("eng_Latn",))
    path = tmp_path / vocab_lib.vocabulary_file(config)
    assert path == tmp_path / "vocab" / "spm.model"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of the temporary file
    fingerprint = vocab_lib.vocabulary_fingerprint(path, 5)

    def never_read():
        raise AssertionError("an existing vocabulary must not be retrained")
        yield

    again = vocab_lib.prepare_vocabulary(tmp_path, config, {"pan_Guru": never_read()})
    assert vocab_lib.vocabulary_fingerprint(path, 5) == fingerprint
    assert again.vocab_size == first.vocab_size
    assert vocab_lib.reserved_id(again, "<2eng_Latn>") == vocab_lib.reserved_id(first, "<2eng_Latn>")


def test_fingerprint_changes_with_file_kind_and_sentinels(tmp_path, every_script_vocab):
    _, path = every_script_vocab
    fingerprint = vocab_lib.vocabulary_fingerprint(path, 10)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 7 + 64
    assert vocab_lib.vocabulary_fingerprint(path, 10) == fingerprint
    assert vocab_lib.vocabulary_fingerprint(path, 11) != fingerprint
    copy = tmp_path / "copy.model"
    copy.write_bytes(path.read_bytes())
    assert vocab_lib.vocabulary_fingerprint(copy, 10) == fingerprint  # content, not location
    copy.write_bytes(path.read_bytes() + b"\0")
    assert vocab_lib.vocabulary_fingerprint(copy, 10) != fingerprint


def test_vocabulary_errors_are_lowres_errors_and_files_get_the_usual_mode(tmp_path):
    import stat

    from lowres.errors import ConfigError, MissingFileError

    with pytest.raises(ConfigError, match="VocabularyConfig.kind"):
        vocab_lib.VocabularyConfig(kind="words")
    with pytest.raises(ConfigError, match="no whitespace"):
        vocab_lib.reserved_tokens([], ["<two words>"])
    with pytest.raises(MissingFileError, match="does not exist"):
        vocab_lib.load_vocabulary(tmp_path / "missing.model")
    config = vocab_lib.VocabularyConfig(kind="bytes")
    vocab_lib.prepare_vocabulary(tmp_path / "run", config, {"pan_Guru": []})
    path = tmp_path / "run" / vocab_lib.vocabulary_file(config)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # written by lowres.files.write_atomic
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(ConfigError, match="holds a bytes vocabulary"):
        vocab_lib.prepare_vocabulary(tmp_path / "run", vocab_lib.VocabularyConfig(), {"pan_Guru": ["ਪੰਜਾਬੀ"]})


def test_a_vocabulary_too_small_for_its_characters_grows_to_fit_and_says_so(tmp_path, caplog):
    import logging
    import re

    import sentencepiece as spm

    texts = {"pan_Guru": flores_like("pan_Guru", 10, seed=0)}
    with caplog.at_level(logging.WARNING):
        vocab_lib.train_vocabulary(texts, tmp_path / "grown.model", vocab_lib.VocabularyConfig(vocab_size=260))
    found = re.search(r"vocab_size grows from 260 to (\d+)", caplog.text)
    assert found, caplog.text
    pieces = spm.SentencePieceProcessor(model_file=str(tmp_path / "grown.model")).get_piece_size()
    assert 260 < pieces <= int(found.group(1))
