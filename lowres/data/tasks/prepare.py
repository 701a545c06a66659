"""Prepares a run's data: the corpus, the vocabulary stored with the model, and the seqio mixture.

DataConfig.source is `builtin`, a declared corpus name (lowres.data.text.corpora) or a SOURCE string
(flores:DIR, text:GLOB, jsonl:GLOB, udhr:GLOB, tfds:FAMILY) read as an ad-hoc corpus.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import seqio

from lowres.data.config import DataConfig, MixingConfig
from lowres.data.languages import normalize_language
from lowres.data.tasks import objectives
from lowres.data.tasks.builtin import ENGLISH, register_builtin_mixture, train_lines
from lowres.data.tasks.corpus_tasks import register_corpus
from lowres.data.text import corpora
from lowres.data.text.builtin_corpus import BuiltinCorpus, build_builtin_corpus
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.errors import ConfigError

VOCAB_FILE = "vocab/spm.model"


@dataclasses.dataclass(frozen=True)
class PreparedData:
    corpus: BuiltinCorpus | corpora.CorpusSpec
    vocabulary: seqio.Vocabulary
    mixture: str
    languages: tuple[str, ...]
    mode_tokens: bool = True  # whether the denoisers prepend UL2 mode tokens ([NLU], [NLG], [S2S])


def prepare_data(
    model_dir: Path, config: DataConfig, vocab_config: vocab_lib.VocabularyConfig, progress: bool = True
) -> PreparedData:
    """Builds (or reuses) everything the training stream needs; the vocabulary lives in `model_dir`."""
    if config.source != "builtin":
        return _prepare_corpus(model_dir, config, vocab_config)
    languages = tuple(normalize_language(code) for code in config.languages) if config.languages else None
    seen = languages
    if config.translation_rate and languages and ENGLISH not in languages:
        seen = (*languages, ENGLISH)  # the pairs are English-aligned: the vocabulary needs English and <2eng_Latn>
    corpus = build_builtin_corpus(languages=seen, progress=progress)
    texts = {lang: train_lines(corpus, lang) for lang in corpus.languages}
    vocabulary = vocab_lib.prepare_vocabulary(model_dir, vocab_config, texts, tag_languages=corpus.languages)
    mixture = register_builtin_mixture(
        corpus, vocabulary, config.objective, config.temperature_alpha, languages, config.shuffle_buffer_size,
        config.translation_rate,
    )
    return PreparedData(corpus, vocabulary, mixture, corpus.languages, _uses_mode_tokens(config.objective))


def _uses_mode_tokens(objective: str) -> bool:
    """Whether the run's denoisers prepend UL2 mode tokens (bits-per-byte scoring must do the same)."""
    return any(denoiser.mode_token for denoiser, _ in objectives.objective(objective))


def _prepare_corpus(model_dir: Path, config: DataConfig, vocab_config: vocab_lib.VocabularyConfig) -> PreparedData:
    """A declared or ad-hoc corpus: vocabulary trained on its train split, tasks and mixture registered.

    A declared corpus keeps its own objective and mixing; a SOURCE string takes DataConfig's.
    """
    try:
        spec = corpora.spec_for_source(
            config.source, config.languages, config.objective, MixingConfig(alpha=config.temperature_alpha)
        )
    except ValueError as error:
        raise ConfigError(f"DataConfig.source={config.source!r}: {error}") from error
    languages = corpora.languages(spec) if spec.kind != "parallel" else []
    pairs = corpora.pairs(spec)
    if config.translation_rate:
        if not pairs or spec.kind == "parallel":
            raise ConfigError(
                f"DataConfig.translation_rate={config.translation_rate} mixes translation into a monolingual corpus, but "
                f"DataConfig.source={config.source!r} declares no pairs; declare them (CorpusSpec.pairs, e.g. "
                "[('eng_Latn', 'pan_Guru')] or 'eng_Latn-*') or set DataConfig.translation_rate = 0"
            )
        spec = dataclasses.replace(spec, translation_share=config.translation_rate)
    tag_languages = sorted({*languages, *(lang for pair in pairs for lang in pair)})
    texts = {lang: _corpus_lines(spec, lang, pairs) for lang in tag_languages}
    vocabulary = vocab_lib.prepare_vocabulary(model_dir, vocab_config, texts, tag_languages=tag_languages)
    registered = register_corpus(spec, vocabulary, config.shuffle_buffer_size)
    mode_tokens = _uses_mode_tokens(spec.objective) if spec.kind != "parallel" else False
    return PreparedData(spec, vocabulary, registered.training_mixture, tuple(tag_languages), mode_tokens)


def _corpus_lines(spec: corpora.CorpusSpec, lang: str, pairs):
    """Training text of one language, read only when the vocabulary has to be trained."""
    if spec.kind != "parallel":
        for doc in corpora.documents(spec, lang, "train"):
            yield from doc.text.splitlines()
        return
    for src, tgt in pairs:
        if lang in (src, tgt):
            for pair in corpora.pair_records(spec, src, tgt, "train"):
                yield pair.src if lang == src else pair.tgt
