"""Shared fixtures: a session-wide built-in corpus cache and a small vocabulary trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One corpus cache for the whole session, also handed to CLI subprocesses via LOWRES_CACHE_DIR."""
    path = tmp_path_factory.mktemp("lowres-cache")
    os.environ["LOWRES_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def corpus(cache_dir):
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    return build_builtin_corpus(cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="session")
def vocabulary(corpus, tmp_path_factory):
    from lowres.data.vocab import vocabulary as vocab_lib

    texts = []
    for lang in corpus.languages:
        texts.extend(corpus.mono_path(lang, "train").read_text(encoding="utf-8").splitlines())
    path = tmp_path_factory.mktemp("vocab") / "spm.model"
    config = vocab_lib.VocabularyConfig(vocab_size=2000, num_sentinels=100)
    vocab_lib.train_sentencepiece(texts, path, config, languages=corpus.languages)
    return vocab_lib.load_vocabulary(path, config.num_sentinels)
