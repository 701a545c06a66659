"""Per-language vocabulary diagnostics: fertility, byte-fallback share and unknown rate (`lowres vocab report`).

Fertility is tokens per whitespace-separated word and tokens per character (Unicode code point,
spaces included); for scripts written without spaces (Han, Thai, Kana) only the per-character
number compares across languages. A byte-fallback token is a SentencePiece `<0xNN>` piece, or
any byte of a byte-level vocabulary.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lowres.data.vocab.byte_vocabulary import NUM_BYTES, NUM_SPECIAL, ReservedByteVocabulary
from lowres.files import write_atomic, write_json


@dataclasses.dataclass(frozen=True)
class LanguageStats:
    """Token counts of one language's documents under one vocabulary."""

    documents: int
    words: int
    characters: int
    bytes: int
    tokens: int
    byte_tokens: int
    unk_tokens: int

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words if self.words else float("nan")

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / self.characters if self.characters else float("nan")

    @property
    def byte_fallback_share(self) -> float:
        return self.byte_tokens / self.tokens if self.tokens else 0.0

    @property
    def unk_rate(self) -> float:
        return self.unk_tokens / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row.update(
            tokens_per_word=self.tokens_per_word,
            tokens_per_char=self.tokens_per_char,
            byte_fallback_share=self.byte_fallback_share,
            unk_rate=self.unk_rate,
        )
        return row


def _byte_token_test(vocabulary):
    if isinstance(vocabulary, ReservedByteVocabulary):
        return lambda token: NUM_SPECIAL <= token < NUM_SPECIAL + NUM_BYTES
    return vocabulary.tokenizer.is_byte


def language_stats(vocabulary, documents: Iterable[str]) -> LanguageStats:
    """Counts tokens, byte-fallback tokens and unknowns of `documents` encoded by `vocabulary`."""
    is_byte = _byte_token_test(vocabulary)
    unk = vocabulary.unk_id
    docs = words = chars = num_bytes = tokens = byte_tokens = unk_tokens = 0
    for doc in documents:
        ids = vocabulary.encode(doc)
        docs += 1
        words += len(doc.split())
        chars += len(doc)
        num_bytes += len(doc.encode("utf-8"))
        tokens += len(ids)
        byte_tokens += sum(1 for token in ids if is_byte(token))
        unk_tokens += sum(1 for token in ids if token == unk)
    return LanguageStats(docs, words, chars, num_bytes, tokens, byte_tokens, unk_tokens)


def vocabulary_report(
    vocabulary, documents: Mapping[str, Iterable[str]], description: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """{"vocabulary": description + kind and size, "languages": {lang: LanguageStats.as_dict()}}."""
    from tqdm.auto import tqdm

    kind = "bytes" if isinstance(vocabulary, ReservedByteVocabulary) else "sentencepiece"
    languages = {
        lang: language_stats(vocabulary, docs).as_dict()
        for lang, docs in tqdm(documents.items(), desc="vocab report", unit="lang", disable=not progress)
    }
    return {"vocabulary": {**(description or {}), "kind": kind, "vocab_size": vocabulary.vocab_size},
            "languages": languages}


def report_table(report: Mapping[str, Any]) -> str:
    """The report as a markdown table, one row per language."""
    lines = [
        "| language | documents | words | characters | tokens | tokens/word | tokens/char | byte fallback | unk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, r in report["languages"].items():
        lines.append(
            f"| {lang} | {r['documents']:,} | {r['words']:,} | {r['characters']:,} | {r['tokens']:,} | "
            f"{r['tokens_per_word']:.2f} | {r['tokens_per_char']:.3f} | {r['byte_fallback_share']:.2%} | "
            f"{r['unk_rate']:.2%} |"
        )
    return "\n".join(lines)


def plot_fertility(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Bar charts of tokens per word and per character for every language, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    langs = list(report["languages"])
    rows = [report["languages"][lang] for lang in langs]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(langs) + 2), 6), sharex=True)
    for axis, key, label in ((axes[0], "tokens_per_word", "tokens per word"),
                             (axes[1], "tokens_per_char", "tokens per character")):
        axis.bar(range(len(langs)), [r[key] for r in rows], color="tab:blue")
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(langs)), langs, rotation=90, fontsize=8)
    vocabulary = report.get("vocabulary", {})
    axes[0].set_title(f"fertility, {vocabulary.get('kind', '')} vocabulary of {vocabulary.get('vocab_size', '?')}")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, image.getvalue())
    return path


def write_report(report: Mapping[str, Any], output: str | os.PathLike) -> tuple[Path, Path]:
    """Writes the JSON report atomically and the fertility chart beside it (same name, .png)."""
    output = Path(output)
    write_json(output, report)
    return output, plot_fertility(report, output.with_suffix(".png"))
