"""`lowres data describe`: languages, documents, bytes, tokens, mixing rates and expected epochs.

Works on anything `corpora.spec_for_source` resolves (builtin, flores:DIR, text:/jsonl:GLOB, a
declared corpus) and on mixture names `<corpus>.<objective>` of such corpora.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from lowres.data.languages import language_name
from lowres.data.mixing.rates import expected_epochs, language_rates
from lowres.data.tasks.names import mixture_name, pair_task_name, task_name
from lowres.data.text import corpora
from lowres.data.text.sources import SourceError

__all__ = ["DescribeRow", "describe", "describe_rows", "resolve"]


@dataclasses.dataclass(frozen=True)
class DescribeRow:
    lang: str
    documents: int
    bytes: int
    tokens: int | None
    rate: float
    epochs: float | None


def resolve(name: str) -> corpora.CorpusSpec:
    """A source or declared corpus, or a mixture `<corpus>.<objective>` of one (the objective is kept)."""
    try:
        return corpora.spec_for_source(name)
    except SourceError:
        corpus, dot, objective = name.rpartition(".")
        if not dot or ":" in objective:
            raise
        from lowres.data.tasks.objectives import OBJECTIVES

        try:
            spec = corpora.spec_for_source(corpus)
        except SourceError:
            raise SourceError(f"{name!r} is neither a source, a declared corpus nor a <corpus>.<objective> mixture "
                              "of one; declare corpora with --gin_file (see gin_configs/corpora/flores.gin)") from None
        if objective not in OBJECTIVES:
            raise SourceError(f"mixture {name!r}: unknown objective {objective!r}; choose one of {sorted(OBJECTIVES)}")
        return dataclasses.replace(spec, objective=objective)


def describe_rows(spec: corpora.CorpusSpec, tokens: float | None = None, vocabulary=None,
                  progress: bool = False) -> tuple[list[DescribeRow], corpora.CorpusStats]:
    """One row per language of the train split; epochs are over `tokens` training tokens."""
    stats = corpora.corpus_stats(spec, "train", vocabulary, progress)
    rates = language_rates(spec, stats)
    sizes = stats.tokens if stats.tokens is not None else stats.bytes
    epochs = expected_epochs(rates, sizes, tokens) if tokens else {}
    rows = [
        DescribeRow(lang, stats.documents[lang], stats.bytes[lang],
                    stats.tokens[lang] if stats.tokens is not None else None, rates[lang], epochs.get(lang))
        for lang in rates
    ]
    return rows, stats


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(c).rjust(w) if i >= numeric_from else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, rows[:-1]), rule, fmt(rows[-1])])


def describe(name: str, tokens: float | None = None, vocabulary=None, progress: bool = False) -> str:
    """The plain-text report `lowres data describe NAME` prints."""
    spec = resolve(name)
    rows, stats = describe_rows(spec, tokens, vocabulary, progress)
    split = corpora.split_map(spec)["train"]
    mixing = spec.mixing
    how = {"temperature": f"temperature alpha={mixing.alpha}", "unimax": f"UniMax budget={mixing.budget}",
           "fixed": "fixed weights"}[mixing.method]
    lines = [
        f"corpus {spec.name}: {spec.source} ({spec.kind}), train split = source split {split!r}",
        f"mixture {mixture_name(spec.name, spec.objective)}: {how}, sizes in {mixing.size_unit}"
        + (f", max {mixing.max_epochs:g} epochs" if mixing.max_epochs else ""),
    ]
    if vocabulary is None:
        lines.append("tokens: bytes-only (no vocabulary; pass --model_dir=DIR of a trained run to count tokens)"
                     + ("; epochs below count one token per byte" if tokens else ""))
    if not stats.exact_bytes:
        lines.append("bytes: serialized TFDS record sizes from the dataset info (not re-counted)")
    header = ["lang", "name", "documents", "bytes", "tokens", "rate"]
    if tokens:
        header.append(f"epochs@{tokens:,.0f}")
    table = []
    for row in rows:
        cells = [row.lang, language_name(row.lang), f"{row.documents:,}", f"{row.bytes:,}",
                 f"{row.tokens:,}" if row.tokens is not None else "-", f"{row.rate:.4f}"]
        if tokens:
            cells.append(f"{row.epochs:.3g}")
        table.append(cells)
    totals = [f"total ({len(rows)} languages)", "", f"{sum(r.documents for r in rows):,}",
              f"{sum(r.bytes for r in rows):,}",
              f"{sum(r.tokens for r in rows):,}" if vocabulary is not None else "-", f"{sum(r.rate for r in rows):.4f}"]
    if tokens:
        totals.append("")
    lines.append(_table(header, [*table, totals], 2))
    lines.append(_task_summary(spec, [row.lang for row in rows]))
    pairs = corpora.pairs(spec)
    if pairs:
        shown = ", ".join(f"{a}-{b}" for a, b in pairs[:10]) + (f", ... ({len(pairs)} pairs)" if len(pairs) > 10 else "")
        lines.append(f"parallel pairs: {shown}")
        translation = spec.translation.name if spec.translation else "translate"
        example = pair_task_name(spec.name, *pairs[0], translation)
        lines.append(f"translation tasks: {len(pairs)} ({example}, ...), mixture {mixture_name(spec.name, translation)}")
    if stats.cleaning:
        lines.append("cleaning (all languages):")
        lines.append(_merged_cleaning(stats.cleaning.values()).table())
    if stats.read.replaced_lines or stats.read.skipped_lines or stats.read.empty_files or stats.read.skipped:
        lines.append(f"reading: {stats.read.replaced_lines} lines with invalid UTF-8 replaced, "
                     f"{stats.read.skipped_lines} skipped, "
                     f"{stats.read.empty_files} empty files, {stats.read.skipped} unusable records skipped")
    return "\n".join(lines)


def _merged_cleaning(reports):
    from lowres.data.text.cleaning import CleaningReport

    total = CleaningReport()
    for report in reports:
        total.input += report.input
        total.kept += report.kept
        for step, n in report.dropped.items():
            total.dropped[step] = total.dropped.get(step, 0) + n
        for step, n in report.modified.items():
            total.modified[step] = total.modified.get(step, 0) + n
    return total


def _task_summary(spec: corpora.CorpusSpec, langs: Sequence[str]) -> str:
    """How many monolingual tasks registering the spec adds, and their names' pattern."""
    from lowres.data.tasks.objectives import objective

    if spec.kind == "parallel":
        return "monolingual tasks: none (a parallel corpus)"
    from lowres.data.tasks.registration import objective_task_name

    entries = objective(spec.objective)
    pattern = objective_task_name(spec.name, "<lang>", spec.objective, entries)
    if len(entries) == 1:
        return f"monolingual tasks: {len(langs)}, one per language ({pattern})"
    views = task_name(spec.name, "<lang>", "{" + ",".join(denoiser.name for denoiser, _ in entries) + "}")
    return (f"monolingual tasks: {len(langs)}, one per language ({pattern}; each example picks one of "
            f"{len(entries)} denoisers), and {len(langs) * len(entries)} one-denoiser views {views}")
