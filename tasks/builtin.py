"""SeqIO registrations over the built-in corpus: one task per (language, denoiser), one mixture."""

from __future__ import annotations

from collections.abc import Sequence

import seqio

from lowres.data import objectives
from lowres.data.builtin_corpus import BuiltinCorpus
from lowres.data.languages import normalize_language
from lowres.data.tasks import TextSplitFiles, register_language_mixture

CORPUS = "builtin"
SPLITS = ("train", "validation")


def builtin_sources(corpus: BuiltinCorpus, languages: Sequence[str] | None = None) -> list[TextSplitFiles]:
    """Per-language split files of the built-in corpus (all of its languages by default)."""
    stats = {(row["lang"], row["split"]): row for row in corpus.describe()}
    sources = []
    for lang in [normalize_language(code) for code in languages] if languages else corpus.languages:
        sources.append(
            TextSplitFiles(
                lang=lang,
                files={split: str(corpus.mono_path(lang, split)) for split in SPLITS},
                num_documents={split: stats[(lang, split)]["documents"] for split in SPLITS},
                num_bytes=stats[(lang, "train")]["bytes"],
            )
        )
    return sources


def register_builtin_mixture(
    corpus: BuiltinCorpus,
    vocabulary: seqio.Vocabulary,
    objective: str = "r_and_s",
    alpha: float = 0.3,
    languages: Sequence[str] | None = None,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
) -> str:
    """Registers `builtin.<lang>.<denoiser>` tasks and the mixture `builtin.<objective>`; returns its name."""
    name = f"{CORPUS}.{objective}"
    register_language_mixture(
        name,
        CORPUS,
        builtin_sources(corpus, languages),
        vocabulary,
        objectives.objective(objective),
        alpha,
        shuffle_buffer_size,
    )
    return name
