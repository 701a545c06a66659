"""Vocabularies with reserved ids for UL2 mode tokens, language tags, task tags and sentinels.

Two kinds, chosen by `VocabularyConfig.kind`:
- "sentencepiece": trained on temperature-sampled text per language, with byte fallback. Mode
  tokens, language tags (`<2pan_Guru>`) and task tags are SentencePiece *control symbols*: they own
  fixed ids but plain text never encodes to them (the UL2 release encoded "[NLU]" as text and users
  could not find the ids).
- "bytes": the ByT5 layout (lowres.data.vocab.byte_vocabulary); reserved tokens take the lowest extra ids.
For both kinds sentinels are seqio extra ids at the top of the vocabulary, as in T5: sentinel i is
`vocab_size - 1 - i`, which is what seqio's span corruption and T5 checkpoints expect; they are not
SentencePiece user symbols, so a vocabulary can be resized (more sentinels) without retraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import gin
import numpy as np
import seqio
import sentencepiece as spm

from lowres.data.languages import normalize_language
from lowres.data.mixing.rates import temperature_rates
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary, is_byte_vocabulary_file, load_byte_vocabulary
from lowres.config_fields import any_value, at_least, between, one_of, validated
from lowres.errors import ConfigError, DataError, MissingFileError
from lowres.files import write_atomic

logger = logging.getLogger(__name__)

MODE_TOKENS = ("[NLU]", "[NLG]", "[S2S]")
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # T5 layout; seqio relies on pad=0, eos=1.
KINDS = ("sentencepiece", "bytes")
# Where each kind lives inside a run directory.
VOCAB_FILES = {"sentencepiece": "vocab/spm.model", "bytes": "vocab/bytes.json"}

Vocabulary = seqio.SentencePieceVocabulary | ReservedByteVocabulary


def language_tag(lang: str) -> str:
    """The reserved token that asks for output in `lang` (e.g. `<2pan_Guru>`)."""
    return f"<2{lang}>"


@gin.configurable
@validated(
    kind=one_of(*KINDS), vocab_size=at_least(1), model_type=one_of("unigram", "bpe", "word", "char"),
    character_coverage=between(0.0, 1.0, low_open=True), normalization_rule_name=any_value("a SentencePiece rule"),
    num_sentinels=at_least(0), temperature_alpha=between(0.0, 1.0), max_sentences=at_least(1), seed=at_least(0),
    base_model=any_value("a SentencePiece model file"), extend_pieces=at_least(0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class VocabularyConfig:
    """What vocabulary a run uses and how a SentencePiece one is trained (`vocab_size` is a ceiling)."""

    kind: str = "sentencepiece"
    vocab_size: int = 4000
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    byte_fallback: bool = True
    # "identity" keeps decode(encode(x)) == x for every script; use "nmt_nfkc" for T5's behaviour.
    normalization_rule_name: str = "identity"
    num_sentinels: int = 100
    # Extra control symbols after the mode tokens and language tags, e.g. ("<translate>", "<summarize>").
    task_tags: tuple[str, ...] = ()
    # Training text: sentences of language l are drawn at rate ∝ size_l ** alpha, up to max_sentences.
    temperature_alpha: float = 0.3
    max_sentences: int = 1_000_000
    seed: int = 0
    # SentencePiece needs a piece for every character it keeps (`character_coverage` of the text), plus
    # specials, byte pieces and reserved tokens. Many languages can need more than `vocab_size`: grow
    # to the smallest size that holds them (with a warning naming both), or, when False, stop with an
    # error that names that minimum before anything is trained.
    grow_to_fit: bool = True
    # Extend this SentencePiece model (an imported checkpoint's) instead of training one: its pieces keep
    # their ids; the run's reserved tokens it lacks are appended, then up to `extend_pieces` pieces of a
    # model trained on the run's text (vocab_size and the settings above). Sentinels move up to stay on top.
    base_model: str | None = None
    extend_pieces: int = 0

    def __post_init__(self):
        if self.base_model is not None and self.kind != "sentencepiece":
            raise ConfigError("VocabularyConfig.base_model extends a SentencePiece model; set kind='sentencepiece'")
        object.__setattr__(self, "task_tags", tuple(self.task_tags))


def reserved_tokens(languages: Sequence[str] = (), task_tags: Sequence[str] = ()) -> list[str]:
    """The reserved (control) tokens in id order: mode tokens, language tags (codes normalised), task tags."""
    codes = dict.fromkeys(normalize_language(lang) for lang in languages)
    tokens = list(MODE_TOKENS) + [language_tag(lang) for lang in codes] + list(task_tags)
    for tag in task_tags:
        if not tag or any(ch.isspace() for ch in tag):
            raise ConfigError(f"task tag {tag!r} must be non-empty and contain no whitespace")
    repeated = sorted({t for t in tokens if tokens.count(t) > 1})
    if repeated:
        raise ConfigError(f"reserved tokens repeat {repeated}; task tags must differ from mode tokens and language tags")
    return tokens


def sample_sentences(
    texts_by_language: Mapping[str, Iterable[str]], alpha: float = 0.3, max_sentences: int = 1_000_000, seed: int = 0
) -> tuple[list[str], dict[str, int]]:
    """Temperature-sampled training sentences and how many each language got.

    Language l gets round(p_l * budget) sentences with p_l ∝ (UTF-8 bytes of l) ** alpha and budget =
    min(max_sentences, all sentences): low-resource languages are repeated (whole passes plus a random
    remainder), high-resource ones subsampled without replacement. Texts are read once, keeping a
    uniform reservoir of at most `max_sentences` lines per language.
    """
    from tqdm.auto import tqdm

    reservoir_rng = random.Random(seed)
    kept, seen, sizes = {}, {}, {}
    for lang, lines in tqdm(texts_by_language.items(), desc="vocabulary text", unit="lang", disable=None):
        sample, count, size = [], 0, 0
        for line in lines:
            if not line or line.isspace():
                continue
            count += 1
            size += len(line.encode("utf-8"))
            if len(sample) < max_sentences:
                sample.append(line)
            elif (slot := reservoir_rng.randrange(count)) < max_sentences:
                sample[slot] = line
        kept[lang], seen[lang], sizes[lang] = sample, count, size
    empty = [lang for lang, count in seen.items() if not count]
    if empty:
        raise DataError(f"no training text for {empty}; drop these languages or give them text")
    rates = temperature_rates(sizes, alpha)
    budget = min(max_sentences, sum(seen.values()))
    rng = np.random.default_rng(seed)
    sampled, counts = [], {}
    for lang, lines in kept.items():
        # quota > len(lines) only when the language has fewer than max_sentences lines, all of them kept.
        quota = max(1, round(rates[lang] * budget))
        passes, remainder = divmod(quota, len(lines))
        sampled.extend(lines * passes + [lines[i] for i in sorted(rng.choice(len(lines), remainder, replace=False))])
        counts[lang] = quota
    order = rng.permutation(len(sampled))
    return [sampled[i] for i in order], counts


def train_vocabulary(
    texts_by_language: Mapping[str, Iterable[str]],
    output_path: str | os.PathLike,
    config: VocabularyConfig = VocabularyConfig(),
    tag_languages: Sequence[str] = (),
) -> Path:
    """Trains a SentencePiece model on temperature-sampled text of every language; tags every language."""
    sentences, counts = sample_sentences(texts_by_language, config.temperature_alpha, config.max_sentences, config.seed)
    languages = list(dict.fromkeys([*texts_by_language, *tag_languages]))
    config = fitted_config(config, sentences, len(reserved_tokens(languages, config.task_tags)), len(counts))
    cached = _trained_before(sentences, config, languages)
    if cached.is_file():  # the same sentences and settings were trained into a model before: reuse it
        logger.info("vocabulary: reusing %s (trained before on the same sentences and settings)", cached)
        return write_atomic(output_path, cached.read_bytes())
    fewest = min(counts, key=counts.get)
    logger.info("vocabulary: training SentencePiece (%s, %d pieces) on %d sentences of %d language(s) (fewest: %s "
                "%d); minutes for hundreds of languages", config.model_type, config.vocab_size, len(sentences),
                len(counts), fewest, counts[fewest])  # fmt: skip
    started = time.perf_counter()
    train_sentencepiece(sentences, cached, config, languages=languages)
    logger.info("vocabulary: trained in %.0f s; kept in %s for runs with the same text", time.perf_counter() - started,
                cached)  # fmt: skip
    return write_atomic(output_path, cached.read_bytes())


def _trained_before(sentences: Sequence[str], config: VocabularyConfig, languages: Sequence[str]) -> Path:
    """Where a model trained on exactly these sentences with these settings is kept between runs
    (lowres's cache directory, vocab/<digest>.model). SentencePiece training takes minutes for
    hundreds of languages; runs that sample the same text reuse it."""
    from lowres.data.text.builtin_corpus import default_cache_dir

    digest = hashlib.sha256()
    settings = {**dataclasses.asdict(config), "languages": list(languages), "sentencepiece": spm.__version__}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for sentence in sentences:
        digest.update(sentence.encode("utf-8") + b"\n")
    return default_cache_dir() / "vocab" / f"{digest.hexdigest()[:32]}.model"


# Pieces a SentencePiece model holds besides characters: <pad>, </s>, <unk>, and 256 byte pieces.
_SPECIAL_PIECES = 3
_BYTE_PIECES = 256
# Room for multi-character pieces on top of the required characters when the size is grown.
_GROWTH_MARGIN = 1.25


def required_characters(sentences: Iterable[str], coverage: float) -> int:
    """How many distinct characters SentencePiece keeps for `coverage` of the text: the most frequent
    ones until their share of all characters reaches it (its `character_coverage` rule)."""
    counts = Counter()
    for sentence in sentences:
        counts.update(sentence)
    frequencies = sorted(counts.values(), reverse=True)
    total, kept, needed = sum(frequencies), 0, 0
    for frequency in frequencies:
        if total and kept / total >= coverage:
            break
        kept += frequency
        needed += 1
    return needed


def minimum_vocab_size(config: VocabularyConfig, characters: int, num_reserved: int) -> int:
    """The smallest `vocab_size` SentencePiece accepts for text needing `characters` characters."""
    return characters + _SPECIAL_PIECES + num_reserved + (_BYTE_PIECES if config.byte_fallback else 0)


def fitted_config(config: VocabularyConfig, sentences: Sequence[str], num_reserved: int,
                  num_languages: int) -> VocabularyConfig:  # fmt: skip
    """`config`, grown (or refused) when its `vocab_size` cannot hold the sample's characters."""
    characters = required_characters(sentences, config.character_coverage)
    minimum = minimum_vocab_size(config, characters, num_reserved)
    if config.vocab_size >= minimum:
        return config
    if not config.grow_to_fit:
        raise ConfigError(
            f"VocabularyConfig.vocab_size={config.vocab_size} is too small for {num_languages} language(s): their "
            f"text needs {characters} characters (character_coverage={config.character_coverage}), {minimum} pieces "
            f"with specials, bytes and reserved tokens; set vocab_size >= {minimum}, lower character_coverage, or "
            "set VocabularyConfig.grow_to_fit=True"
        )
    grown = int(math.ceil(minimum * _GROWTH_MARGIN / 100.0) * 100)
    logger.warning(
        "vocabulary: %d language(s) need %d characters (character_coverage=%s); VocabularyConfig.vocab_size "
        "grows from %d to %d (set grow_to_fit=False to refuse instead)", num_languages, characters,
        config.character_coverage, config.vocab_size, grown,
    )
    return dataclasses.replace(config, vocab_size=grown)


def train_sentencepiece(
    texts: Iterable[str],
    output_path: str | os.PathLike,
    config: VocabularyConfig = VocabularyConfig(),
    languages: Sequence[str] = (),
    extra_reserved: Sequence[str] = (),
) -> Path:
    """Trains a SentencePiece model on `texts` (used as given) and writes it atomically to `output_path`."""
    output_path = Path(output_path)
    reserved = reserved_tokens(languages, [*config.task_tags, *extra_reserved])
    model = io.BytesIO()
    with tempfile.TemporaryDirectory() as scratch:
        normalization = _normalization_options(config.normalization_rule_name, Path(scratch))
        _train(texts, model, config, reserved, normalization)
    write_atomic(output_path, _without_scratch_paths(model.getvalue()))
    return output_path


def _without_scratch_paths(serialized: bytes) -> bytes:
    """Drops the rule file's temporary path from the model (its rules are compiled in), so equal
    training gives byte-identical files and fingerprints."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto.FromString(serialized)
    proto.normalizer_spec.ClearField("normalization_rule_tsv")
    return proto.SerializeToString()


def _normalization_options(rule_name: str, scratch: Path) -> dict:
    """SentencePiece normaliser options; "identity" becomes a one-rule table that touches no real text.

    A truly empty table makes TensorFlow Text's tokenizer log a line per task at start-up, so
    lossless normalisation maps only the noncharacter U+FFFF, which valid text never contains.
    """
    if rule_name != "identity":
        return {"normalization_rule_name": rule_name}
    rule = scratch / "lossless.tsv"
    rule.write_text("FFFF\tFFFD\n", encoding="ascii")
    return {"normalization_rule_tsv": str(rule), "remove_extra_whitespaces": False}


def _train(texts, model, config: VocabularyConfig, reserved, normalization: dict) -> None:
    try:
        _run_trainer(texts, model, config, reserved, normalization)
    except RuntimeError as error:
        message = str(error).split("] ")[-1]
        raise ConfigError(
            f"SentencePiece training failed: {message} (VocabularyConfig.vocab_size={config.vocab_size} must also "
            f"hold 256 byte pieces, 3 specials and {len(reserved)} reserved tokens)"
        ) from error


def _run_trainer(texts, model, config: VocabularyConfig, reserved, normalization: dict) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t for t in texts if t),
        model_writer=model,
        vocab_size=config.vocab_size,
        hard_vocab_limit=False,
        model_type=config.model_type,
        character_coverage=config.character_coverage,
        byte_fallback=config.byte_fallback,
        split_digits=True,
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        control_symbols=reserved,
        num_threads=max(1, os.cpu_count() or 1),
        minloglevel=2,
        **normalization,
    )


def load_vocabulary(path: str | os.PathLike, num_sentinels: int = 100) -> Vocabulary:
    """The seqio vocabulary stored at `path` (a SentencePiece model or a byte-vocabulary JSON file)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"vocabulary file {path} does not exist; train one with `lowres train` first")
    if is_byte_vocabulary_file(path):
        return load_byte_vocabulary(path, num_sentinels)
    return seqio.SentencePieceVocabulary(str(path), extra_ids=num_sentinels)


def prepare_vocabulary(
    model_dir: str | os.PathLike,
    config: VocabularyConfig,
    texts_by_language: Mapping[str, Iterable[str]],
    tag_languages: Sequence[str] = (),
) -> Vocabulary:
    """The run's vocabulary: loaded from `model_dir` if stored there, else built (trained) and stored.

    Only the keys of `texts_by_language` are read for a byte vocabulary, so values may be lazy
    iterables; every key and every `tag_languages` entry gets a language tag.
    """
    model_dir = Path(model_dir)
    path = model_dir / VOCAB_FILES[config.kind]
    for kind, other in VOCAB_FILES.items():
        if kind != config.kind and (model_dir / other).exists():
            raise ConfigError(
                f"{model_dir / other} holds a {kind} vocabulary but VocabularyConfig.kind={config.kind!r}; "
                f"use kind={kind!r} or a new model directory"
            )
    if not path.exists():
        if config.base_model is not None:
            from lowres.data.vocab.extension import extend_for_run  # extension builds on this module

            extend_for_run(model_dir, path, config, texts_by_language, tag_languages)
        elif config.kind == "bytes":
            languages = list(dict.fromkeys([*texts_by_language, *tag_languages]))
            tokens = reserved_tokens(languages, config.task_tags)
            write_atomic(path, ReservedByteVocabulary(tokens, config.num_sentinels).to_json())
        else:
            train_vocabulary(texts_by_language, path, config, tag_languages)
    return load_vocabulary(path, config.num_sentinels)


def vocabulary_file(config: VocabularyConfig) -> str:
    """Where `prepare_vocabulary` stores a vocabulary of this kind, relative to the run directory."""
    return VOCAB_FILES[config.kind]


def vocabulary_fingerprint(path: str | os.PathLike, num_sentinels: int) -> str:
    """"sha256:<hex>" over the stored file, its kind and the sentinel count: equal iff ids mean the same."""
    path = Path(path)
    kind = "bytes" if is_byte_vocabulary_file(path) else "sentencepiece"
    digest = hashlib.sha256()
    digest.update(f"lowres-vocabulary\0{kind}\0{num_sentinels}\0".encode())
    digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()}"


def reserved_id(vocabulary: Vocabulary, token: str) -> int:
    """The id of a reserved control token (mode token, language or task tag); errors if it is not reserved."""
    if isinstance(vocabulary, ReservedByteVocabulary):
        if token not in vocabulary.reserved_ids:
            raise KeyError(f"{token!r} is not a reserved token of this byte vocabulary")
        return vocabulary.reserved_ids[token]
    processor = vocabulary.tokenizer
    piece_id = processor.piece_to_id(token)
    if piece_id == processor.unk_id() or not processor.is_control(piece_id):
        raise KeyError(f"{token!r} is not a reserved token of this vocabulary")
    return piece_id


def sentinel_id(vocabulary: Vocabulary, index: int) -> int:
    """Id of the `index`-th sentinel (`<extra_id_index>`), counting down from the top as T5 does."""
    count = vocabulary.num_sentinels if isinstance(vocabulary, ReservedByteVocabulary) else vocabulary.extra_ids
    if not 0 <= index < count:
        raise IndexError(f"sentinel {index} out of range: the vocabulary has {count} sentinels")
    return vocabulary.vocab_size - 1 - index
