"""SeqIO registrations over the built-in corpus: one task per language under an objective, translation
tasks over its English-aligned pairs in both directions, and one training mixture. Every task records
a plan over the corpus' token cache (lowres.data.tasks.plans).

The repository's `tasks/builtin.py` imports this module to register them for plain seqio users.
"""

from __future__ import annotations

from collections.abc import Sequence

import seqio

from lowres.data.languages import normalize_language
from lowres.data.mixing.rates import register_mixture, temperature_rates
from lowres.data.tasks import objectives, plans
from lowres.data.tasks.names import mixture_name, pair_task_name
from lowres.data.tasks.registration import TextSplitFiles, register_language_mixture, register_translation_task
from lowres.data.text.builtin_corpus import BuiltinCorpus
from lowres.data.text.sources import TsvSource
from lowres.errors import ConfigError

CORPUS = "builtin"
SPLITS = ("train", "validation")
ENGLISH = "eng_Latn"
TRANSLATION_MIXTURE = mixture_name(CORPUS, "translate")


def default_vocabulary(corpus: BuiltinCorpus) -> seqio.Vocabulary:
    """The default SentencePiece vocabulary (VocabularyConfig()) over the corpus' training text: trained
    on first use and cached as `<cache dir>/sample-vocab/vocab/spm.model` (LOWRES_CACHE_DIR or ~/.cache/lowres).

    A trained run keeps its own vocabulary in its run directory; this one serves `lowres data sample`
    and seqio users of `tasks/builtin.py` who have no run.
    """
    from lowres.data.text.builtin_corpus import default_cache_dir
    from lowres.data.vocab import vocabulary as vocab_lib

    texts = {lang: train_lines(corpus, lang) for lang in corpus.languages}
    return vocab_lib.prepare_vocabulary(default_cache_dir() / "sample-vocab", vocab_lib.VocabularyConfig(), texts,
                                        corpus.languages)


def train_lines(corpus: BuiltinCorpus, lang: str):
    """The training split of one language, read only when the vocabulary has to be trained."""
    yield from corpus.mono_path(lang, "train").read_text(encoding="utf-8").splitlines()


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


def cache_source(corpus: BuiltinCorpus):
    """The built-in corpus as a token-cache source: every language's text and the English pairs."""
    from lowres.data.cache.sources import CorpusSource
    from lowres.data.text.corpora import CorpusSpec

    others = tuple((ENGLISH, lang) for lang in corpus.languages if lang != ENGLISH)
    return CorpusSource(CorpusSpec(name=CORPUS, source="builtin", pairs=others or None))


def translation_languages(corpus: BuiltinCorpus, languages: Sequence[str] | None = None) -> list[str]:
    """The non-English languages whose English-aligned pairs become translation tasks."""
    langs = [normalize_language(code) for code in languages] if languages else list(corpus.languages)
    return [lang for lang in langs if lang != ENGLISH]


def register_builtin_translation_tasks(
    corpus: BuiltinCorpus,
    vocabulary: seqio.Vocabulary,
    languages: Sequence[str] | None = None,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
) -> dict[str, float]:
    """Registers `builtin.eng_Latn_to_<lang>.translate` and `builtin.<lang>_to_eng_Latn.translate` for each
    non-English language over `parallel/eng_Latn-<lang>.<split>.tsv`; returns task name -> pair bytes.

    Inputs are `<2tgt> source`, with no mode token, the layout `lowres translate` feeds the model.
    """
    sizes = {}
    plan_source = cache_source(corpus)
    for lang in translation_languages(corpus, languages):
        pattern = str(corpus.parallel_path(lang, "train")).replace(".train.tsv", ".{split}.tsv")
        source = TsvSource(pattern, ENGLISH, lang)

        def records(split, index, count, source=source, lang=lang):
            return source.pairs(ENGLISH, lang, split, index, count)

        def files(split, source=source):
            return source.files(ENGLISH, split)

        num_bytes = corpus.parallel_path(lang, "train").stat().st_size
        for src, tgt, direction in ((ENGLISH, lang, "forward"), (lang, ENGLISH, "backward")):
            translation = objectives.Translation(direction=direction)
            name = register_translation_task(
                pair_task_name(CORPUS, src, tgt, "translate"), records, files, SPLITS, CORPUS, vocabulary,
                translation, shuffle_buffer_size,
                plans.PairPlan("", plan_source, ENGLISH, lang, "train", translation),
            )
            sizes[name] = num_bytes
    if not sizes:
        raise ConfigError("translation over the built-in corpus needs a non-English language in DataConfig.languages")
    return sizes


def register_builtin_mixture(
    corpus: BuiltinCorpus,
    vocabulary: seqio.Vocabulary,
    objective: str = "r_and_s",
    alpha: float = 0.3,
    languages: Sequence[str] | None = None,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
    translation_rate: float = 0.0,
) -> str:
    """Registers `builtin.<lang>.<denoiser>` tasks and the mixture `builtin.<objective>`; returns its name.

    The translation tasks and their own mixture `builtin.translate` (for learned LM/MT mixing) are
    registered whenever a non-English language is included.

    With `translation_rate` > 0 the returned mixture is `builtin.<objective>.mixed`: that fraction of
    its examples come from the translation tasks (split over directions by temperature `alpha` on
    pair bytes), the rest from the denoising mixture with its rates unchanged relative to each other.
    """
    if not 0.0 <= translation_rate < 1.0:
        raise ConfigError(f"translation_rate must lie in [0, 1), got {translation_rate}")
    name = mixture_name(CORPUS, objective)
    mono = register_language_mixture(
        name,
        CORPUS,
        builtin_sources(corpus, languages),
        vocabulary,
        objectives.objective(objective),
        alpha,
        shuffle_buffer_size,
        objective_name=objective,
        plan_source=cache_source(corpus),
    )
    if not translation_languages(corpus, languages):
        if translation_rate:
            raise ConfigError("translation over the built-in corpus needs a non-English language in DataConfig.languages")
        return name
    pair_rates = temperature_rates(
        register_builtin_translation_tasks(corpus, vocabulary, languages, shuffle_buffer_size), alpha
    )
    register_mixture(TRANSLATION_MIXTURE, list(pair_rates.items()))
    if translation_rate == 0.0:
        return name
    mixed = f"{name}.mixed"
    register_mixture(
        mixed,
        [(task.name, (1.0 - translation_rate) * mono.get_rate(task) / mono.total_rate) for task in mono.tasks]
        + [(task, translation_rate * rate) for task, rate in pair_rates.items()],
    )
    return mixed
