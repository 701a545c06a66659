"""Held-out documents from a SeqIO task's raw source: `lowres eval --data=task:NAME[:split]`.

The task's source is read before any preprocessing, so the documents are the text the task trains
on (one per source example) and bits per byte stays tokenizer-independent. Tasks of a run's own
mixture are registered from its lowres.json when the name is not registered yet.
"""

from __future__ import annotations

from pathlib import Path

from lowres.data.languages import UnknownLanguageError, normalize_language
from lowres.data.text.sources import Documents, SourceError, SourceRef
from lowres.run_dir import RunInfo, read_run_info


def parse_task_source(data: str) -> tuple[str, str | None]:
    """`task:NAME[:split]` -> (NAME, split or None)."""
    return SourceRef.parse(data, ("task",)).task()


def register_run_tasks(model_dir: Path, info: RunInfo) -> None:
    """Registers a trained run's tasks and mixture with its stored vocabulary (nothing is retrained)."""
    from lowres.data.vocab import vocabulary as vocab_lib
    from lowres.data.config import DataConfig
    from lowres.data.tasks.prepare import prepare_data

    kind = "bytes" if info.vocabulary.endswith(".json") else "sentencepiece"
    config = DataConfig(
        source=info.data_source,
        objective=info.objective,
        languages=list(info.languages) if info.data_source == "builtin" and info.languages else None,
        translation_rate=info.translation_rate,
    )
    prepare_data(model_dir, config, vocab_lib.VocabularyConfig(kind=kind, num_sentinels=info.num_sentinels),
                 progress=False)


def task_documents(name: str, split: str | None = None, model_dir: Path | None = None) -> Documents:
    """Documents of a monolingual task's `split` (default validation), grouped by language.

    When the task has a train split as well, its text is the reference for the unigram baseline.
    """
    import seqio

    if name not in seqio.TaskRegistry.names() and model_dir is not None:
        register_run_tasks(Path(model_dir), read_run_info(Path(model_dir)))
    if name not in seqio.TaskRegistry.names():
        raise SourceError(f"task:{name} is not a registered seqio task (nor one of the run's tasks); "
                          "see `lowres data describe` for the run's mixture")
    task = seqio.get_mixture_or_task(name)
    split = split or "validation"
    if split not in task.splits:
        raise SourceError(f"task:{name} has splits {list(task.splits)}, not {split!r}; write task:{name}:SPLIT")
    documents = _read(task, split)
    reference = _read(task, "train") if split != "train" and "train" in task.splits else None
    return Documents(split, documents, reference, f"task:{name} ({split})")


def _read(task, split: str) -> dict[str, list[str]]:
    """Raw text of one split by language: the `lang` feature, else the `<corpus>.<lang>.<...>` name."""
    fallback = None
    by_lang: dict[str, list[str]] = {}
    for example in task.source.get_dataset(split=split, shuffle=False).as_numpy_iterator():
        if isinstance(example, dict):
            if "text" not in example:
                raise SourceError(f"task:{task.name} has no `text` feature (a translation task?); evaluate "
                                  "translation with --data=flores:DIR --translate=SRC-TGT")
            text, lang = example["text"], example.get("lang")
        else:
            text, lang = example, None
        if lang is None or not len(lang):
            if fallback is None:
                parts = task.name.split(".")
                try:
                    fallback = normalize_language(parts[1] if len(parts) > 2 else parts[0])
                except UnknownLanguageError as error:
                    raise SourceError(f"task:{task.name}: its examples carry no `lang` and its name says no "
                                      "language (expected <corpus>.<lang>.<objective>)") from error
            lang = fallback
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        lang = lang.decode("utf-8") if isinstance(lang, bytes) else str(lang)
        if text.strip():
            by_lang.setdefault(lang, []).append(text)
    if not by_lang:
        raise SourceError(f"task:{task.name} split {split!r} holds no text")
    return by_lang
