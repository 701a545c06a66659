"""SentencePiece vocabularies with reserved ids for UL2 mode tokens, language tags and sentinels.

Mode tokens and language tags are SentencePiece *control symbols*: they own fixed ids but plain
text never encodes to them (the UL2 release encoded "[NLU]" as text and users could not find the
ids). Sentinels are seqio extra ids at the top of the vocabulary, as in T5.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import gin
import seqio
import sentencepiece as spm

MODE_TOKENS = ("[NLU]", "[NLG]", "[S2S]")
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # T5 layout; seqio relies on pad=0, eos=1.


def language_tag(lang: str) -> str:
    """The reserved token that asks for output in `lang` (e.g. `<2pan_Guru>`)."""
    return f"<2{lang}>"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class VocabularyConfig:
    """How the SentencePiece model is trained; `vocab_size` is a ceiling for small corpora."""

    vocab_size: int = 4000
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    byte_fallback: bool = True
    # "identity" keeps decode(encode(x)) == x for every script; use "nmt_nfkc" for T5's behaviour.
    normalization_rule_name: str = "identity"
    num_sentinels: int = 100


def train_sentencepiece(
    texts: Iterable[str],
    output_path: str | os.PathLike,
    config: VocabularyConfig = VocabularyConfig(),
    languages: Sequence[str] = (),
    extra_reserved: Sequence[str] = (),
) -> Path:
    """Trains a SentencePiece model on `texts` and writes it atomically to `output_path`."""
    output_path = Path(output_path)
    reserved = list(MODE_TOKENS) + [language_tag(lang) for lang in languages] + list(extra_reserved)
    model = io.BytesIO()
    with tempfile.TemporaryDirectory() as scratch:
        normalization = _normalization_options(config.normalization_rule_name, Path(scratch))
        _train(texts, model, config, reserved, normalization)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=output_path.parent, delete=False) as tmp:
        tmp.write(model.getvalue())
    os.replace(tmp.name, output_path)
    return output_path


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


def load_vocabulary(path: str | os.PathLike, num_sentinels: int = 100) -> seqio.SentencePieceVocabulary:
    """A seqio vocabulary over the SentencePiece model at `path`, with `num_sentinels` extra ids."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"vocabulary file {path} does not exist; train one with `lowres train` first")
    return seqio.SentencePieceVocabulary(str(path), extra_ids=num_sentinels)


def reserved_id(vocabulary: seqio.SentencePieceVocabulary, token: str) -> int:
    """The id of a reserved control token (mode token or language tag); errors if it is not reserved."""
    processor = vocabulary.tokenizer
    piece_id = processor.piece_to_id(token)
    if piece_id == processor.unk_id() or not processor.is_control(piece_id):
        raise KeyError(f"{token!r} is not a reserved token of this vocabulary")
    return piece_id


def sentinel_id(vocabulary: seqio.SentencePieceVocabulary, index: int) -> int:
    """Id of the `index`-th sentinel (`<extra_id_index>`), counting down from the top as T5 does."""
    if not 0 <= index < vocabulary.extra_ids:
        raise IndexError(f"sentinel {index} out of range: the vocabulary has {vocabulary.extra_ids} sentinels")
    return vocabulary.vocab_size - 1 - index

