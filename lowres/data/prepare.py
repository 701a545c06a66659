"""Prepares a run's data: the corpus, the vocabulary stored with the model, and the seqio mixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import seqio

from lowres.data import vocab as vocab_lib
from lowres.data.builtin_corpus import BuiltinCorpus, build_builtin_corpus
from lowres.data.languages import normalize_language
from lowres.data.pipeline import DataConfig
from tasks.builtin import register_builtin_mixture

VOCAB_FILE = "vocab/spm.model"


@dataclasses.dataclass(frozen=True)
class PreparedData:
    corpus: BuiltinCorpus
    vocabulary: seqio.Vocabulary
    mixture: str
    languages: tuple[str, ...]


def prepare_data(
    model_dir: Path, config: DataConfig, vocab_config: vocab_lib.VocabularyConfig, progress: bool = True
) -> PreparedData:
    """Builds (or reuses) everything the training stream needs; the vocabulary lives in `model_dir`."""
    if config.source != "builtin":
        raise ValueError(
            f"DataConfig.source={config.source!r}: training data sources other than 'builtin' arrive with "
            "the data-layer work; use 'builtin' for now"
        )
    languages = tuple(normalize_language(code) for code in config.languages) if config.languages else None
    corpus = build_builtin_corpus(languages=languages, progress=progress)
    languages = languages or corpus.languages
    texts = {lang: _train_lines(corpus, lang) for lang in languages}
    vocabulary = vocab_lib.prepare_vocabulary(model_dir, vocab_config, texts, tag_languages=corpus.languages)
    mixture = register_builtin_mixture(
        corpus, vocabulary, config.objective, config.temperature_alpha, languages, config.shuffle_buffer_size
    )
    return PreparedData(corpus, vocabulary, mixture, tuple(languages))


def _train_lines(corpus: BuiltinCorpus, lang: str):
    """The training split of one language, read only when the vocabulary has to be trained."""
    yield from corpus.mono_path(lang, "train").read_text(encoding="utf-8").splitlines()
