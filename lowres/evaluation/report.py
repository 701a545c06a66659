"""The `lowres eval` report: per-language bits per byte beside a unigram byte baseline."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lowres.data.sources import Documents
from lowres.evaluation.bits_per_byte import jitted_scorer, model_bits_per_byte, unigram_byte_bits_per_byte


def evaluate(loaded: dict[str, Any], documents: Documents, batch_size: int = 32) -> dict[str, Any]:
    """Scores every language of `documents` with a restored model (see trainer.load_params).

    The unigram baseline is fitted on the source's training split when it has one (builtin), and
    otherwise on the evaluated text itself, which flatters the baseline; `baseline_fit` says which.
    """
    info = loaded["info"]
    scores = model_bits_per_byte(
        jitted_scorer(loaded["graphdef"], loaded["params"], loaded["rest"]),
        loaded["vocabulary"],
        documents.documents,
        info["inputs_length"],
        info["targets_length"],
        architecture=info["model"].get("architecture", "encoder_decoder"),
        batch_size=batch_size,
        progress=lambda langs: tqdm(langs, desc="languages", unit="lang", leave=False),
    )
    reference = documents.reference or documents.documents
    for lang, row in scores.items():
        row["unigram_bits_per_byte"] = unigram_byte_bits_per_byte(reference[lang], documents.documents[lang])
    mean = sum(r["bits_per_byte"] for r in scores.values()) / len(scores)
    return {
        "step": loaded["step"],
        "split": documents.split,
        "source": documents.description,
        "baseline": "unigram byte model, add-one smoothed",
        "baseline_fit": "train split" if documents.reference else "evaluated text (in-sample)",
        "mean_bits_per_byte": mean,
        "languages": scores,
    }


def table(results: dict[str, Any]) -> str:
    """Markdown table: one row per language, model vs baseline bits per byte."""
    lines = [
        f"step {results['step']} on {results['source']}",
        "| language | documents | bytes | tokens | bits/byte | unigram bits/byte |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lang, row in sorted(results["languages"].items()):
        lines.append(
            f"| {lang} | {row['documents']} | {row['bytes']} | {row['tokens']} | "
            f"{row['bits_per_byte']:.3f} | {row['unigram_bits_per_byte']:.3f} |"
        )
    lines.append(f"mean bits/byte: {results['mean_bits_per_byte']:.3f}")
    return "\n".join(lines)
