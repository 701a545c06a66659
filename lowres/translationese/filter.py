"""Keep the most fluent translationese: the lowest-perplexity p% of documents, or those below a threshold.

Reads a build directory and the TinyLM scores beside it, writes the kept documents (with `perplexity`
and `score` = -mean NLL, so `CleaningConfig.min_score` keeps the same direction) as new shards, a
report with the counts and the cut, and a histogram of the scores with the cut marked.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import gin
import numpy as np

from lowres.figures import save_png
from lowres.translationese.build import DOCS_GLOB, read_records, shard_files
from lowres.translationese.score import scores_path
from lowres.config_fields import between, greater_than, validated
from lowres.errors import ConfigError, DataError, MissingFileError, UsageError
from lowres.files import write_atomic, write_json


@gin.configurable
@validated(keep_percent=between(0.0, 100.0), max_perplexity=greater_than(0.0))
@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Exactly one rule: keep the lowest `keep_percent`% by perplexity (rounded to the nearest document), or
    those with perplexity <= `max_perplexity`."""

    keep_percent: float | None = None
    max_perplexity: float | None = None

    def __post_init__(self):
        if (self.keep_percent is None) == (self.max_perplexity is None):
            raise ConfigError("give exactly one of --keep_percent and --max_perplexity")


def keep_mask(perplexities: np.ndarray, config: FilterConfig) -> np.ndarray:
    """Which documents survive; NaN perplexities (nothing scored) never do. Ties keep the earlier document."""
    perplexities = np.asarray(perplexities, np.float64)
    valid = ~np.isnan(perplexities)
    if config.max_perplexity is not None:
        return valid & (perplexities <= config.max_perplexity)
    count = int(math.floor(len(perplexities) * config.keep_percent / 100.0 + 0.5))
    order = np.argsort(np.where(valid, perplexities, np.inf), kind="stable")[: min(count, int(valid.sum()))]
    mask = np.zeros(len(perplexities), bool)
    mask[order] = True
    return mask


def _joined(docs_path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(document, score) pairs of one shard; the scores file must list the same documents in order."""
    path = scores_path(docs_path)
    if not path.exists():
        raise MissingFileError(f"{path} is missing; run `lowres translationese score --input={docs_path.parent}` first")
    docs, scores = list(read_records([docs_path])), list(read_records([path]))
    if len(docs) != len(scores):
        raise DataError(f"{path} has {len(scores)} scores for {len(docs)} documents in {docs_path}; rerun score")
    for lineno, (doc, score) in enumerate(zip(docs, scores), 1):
        if doc.get("id") != score.get("id"):
            raise DataError(f"{path}:{lineno}: scores document {score.get('id')!r} but {docs_path} has "
                             f"{doc.get('id')!r} there; rerun score")
    return list(zip(docs, scores))


def plot_histogram(perplexities: np.ndarray, cut: float | None, kept: int, dropped: int, path: Path) -> None:
    """Histogram of document perplexities (log scale) with the cut marked, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = perplexities[~np.isnan(perplexities)]
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(values):
        low, high = max(values.min(), 1e-3), max(values.max(), values.min() * 1.01 + 1e-3)
        ax.hist(values, bins=np.geomspace(low, high, 40), color="#4c72b0")
        ax.set_xscale("log")
    if cut is not None:
        ax.axvline(cut, color="#c44e52", linestyle="--", label=f"cut {cut:.4g}: kept {kept}, dropped {dropped}")
        ax.legend()
    ax.set_xlabel("TinyLM perplexity per document")
    ax.set_ylabel("documents")
    ax.set_title("Translationese documents by TinyLM perplexity")
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def filter_directory(input_dir: str | Path, output_dir: str | Path, config: FilterConfig) -> dict[str, Any]:
    """Writes the kept documents of every shard to `output_dir` (same shard names) plus filter.json and a histogram."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if input_dir.resolve() == output_dir.resolve():
        raise UsageError("--output must differ from --input (the unfiltered documents are kept)")
    shards = {path.name: _joined(path) for path in shard_files(input_dir)}
    perplexities = np.array([s["perplexity"] if s.get("perplexity") is not None else np.nan
                             for pairs in shards.values() for _, s in pairs], np.float64)  # fmt: skip
    mask = keep_mask(perplexities, config)
    kept_values = perplexities[mask]
    cut = config.max_perplexity if config.max_perplexity is not None else (
        float(kept_values.max()) if len(kept_values) else None)
    output_dir.mkdir(parents=True, exist_ok=True)
    index = 0
    for name, pairs in shards.items():
        lines = []
        for doc, score in pairs:
            if mask[index]:
                record = {**doc, "perplexity": score["perplexity"], "score": -score["mean_nll"]}
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            index += 1
        out = output_dir / name
        write_atomic(out, "".join(lines))
    kept, total = int(mask.sum()), len(mask)
    histogram = output_dir / "perplexity_histogram.png"
    plot_histogram(perplexities, cut, kept, total - kept, histogram)
    report = {"input": str(input_dir), "config": dataclasses.asdict(config), "documents": total, "kept": kept,
              "dropped": total - kept, "cut_perplexity": cut,
              "kept_mean_perplexity": float(kept_values.mean()) if kept else None,
              "all_mean_perplexity": float(np.nanmean(perplexities)) if total else None,
              "histogram": histogram.name, "data_source": f"jsonl:{output_dir}/{DOCS_GLOB}"}  # fmt: skip
    write_json(output_dir / "filter.json", report)
    return report
