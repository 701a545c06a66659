"""TinyLM perplexity of each translationese document, written beside the documents.

perplexity = exp(mean token NLL over BOS + document + EOS) under a trained decoder-only model (the
TinyLM of METHODS.md section 2): the model reads BOS (id 0) and predicts every document token and
the final EOS. Documents longer than the window are scored in consecutive windows, each restarting
at BOS. Scores go to `scores-<i>-of-<n>.jsonl` next to each `docs-<i>-of-<n>.jsonl`, one line per
document in the same order.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError
from lowres.files import write_atomic, write_json
from lowres.inference.generate import bucket
from lowres.translationese.build import read_records, shard_files


def scores_path(docs_path: Path) -> Path:
    return docs_path.with_name(docs_path.name.replace("docs-", "scores-", 1))


def causal_features(rows: Sequence[Sequence[int]], batch_size: int, width: int) -> dict[str, np.ndarray]:
    """Decoder features predicting each row's tokens from BOS + the tokens before them (empty rows pad)."""
    shape = (batch_size, width)
    targets, inputs = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    weights, segments, positions = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    for r, tokens in enumerate(rows):
        n = len(tokens)
        targets[r, :n] = tokens
        inputs[r, 1:n] = tokens[: n - 1]
        weights[r, :n] = segments[r, :n] = 1
        positions[r, :n] = np.arange(n)
    return {"decoder_target_tokens": targets, "decoder_input_tokens": inputs, "decoder_loss_weights": weights,
            "decoder_segment_ids": segments, "decoder_positions": positions}  # fmt: skip


class TinyLMScorer:
    """Document NLLs under a restored decoder-only model (lowres.checkpoints.trained_model)."""

    def __init__(self, model: TrainedModel, batch_size: int = 16, window: int | None = None):
        from lowres.inference.scoring import jitted_scorer

        if not model.architecture.decoder_only:
            raise ConfigError(f"the TinyLM must be a decoder-only model, got {model.architecture.name}; train one "
                              "with gin_configs/translationese/tinylm.gin")
        self.vocabulary = model.vocabulary
        self.batch_size = batch_size
        self.window = window or model.info.targets_length
        if self.window < 2:
            raise ConfigError(f"the scoring window must hold at least 2 tokens, got {self.window}")
        self.score_fn = jitted_scorer(model.graphdef, model.params, model.rest)

    def token_nll(self, token_docs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(summed NLL in nats, scored tokens) per document of token ids (EOS is appended here)."""
        eos = int(self.vocabulary.eos_id)
        rows = []  # (document, window tokens)
        for d, tokens in enumerate(token_docs):
            tokens = [int(t) for t in tokens] + [eos]
            rows += [(d, tokens[s : s + self.window]) for s in range(0, len(tokens), self.window)]
        rows.sort(key=lambda row: len(row[1]))  # similar lengths share a compiled width
        nll, counts = np.zeros(len(token_docs), np.float64), np.zeros(len(token_docs), np.int64)
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            width = min(bucket(max(len(t) for _, t in batch)), bucket(self.window))
            sums = np.asarray(self.score_fn(causal_features([t for _, t in batch], self.batch_size, width)))
            for (d, tokens), value in zip(batch, sums):
                nll[d] += float(value)
                counts[d] += len(tokens)
        return nll, counts

    def score_texts(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """{"tokens", "mean_nll", "perplexity"} per text."""
        nll, counts = self.token_nll([self.vocabulary.encode(text) for text in texts])
        return [{"tokens": int(c), "mean_nll": float(s / c), "perplexity": float(math.exp(s / c))}
                for s, c in zip(nll, counts)]  # fmt: skip


def score_directory(directory: str | Path, scorer: TinyLMScorer, model: dict[str, Any] | None = None,
                    chunk: int = 256, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Scores every shard of a build directory; shards already scored by the same model are kept."""
    directory = Path(directory)
    files = shard_files(directory)
    summary_path = directory / "scores.json"
    model = model or {}
    previous = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    same_model = previous.get("model") == model and previous.get("window") == scorer.window
    shards: dict[str, int] = dict(previous.get("shards", {})) if same_model else {}
    started, tokens = time.perf_counter(), 0
    for path in files:
        records = list(read_records([path]))
        out = scores_path(path)
        if out.exists() and shards.get(path.name) == len(records):
            continue
        lines = []
        bar = tqdm(total=len(records), unit="doc", desc=f"score {path.name}", disable=not progress, dynamic_ncols=True)
        for begin in range(0, len(records), chunk):
            part = records[begin : begin + chunk]
            for record, score in zip(part, scorer.score_texts([r["text"] for r in part])):
                lines.append(json.dumps({"id": record.get("id"), "source_id": record.get("source_id"), **score},
                                        ensure_ascii=False))  # fmt: skip
                tokens += score["tokens"]
            bar.update(len(part))
            bar.set_postfix(tok_s=f"{tokens / (time.perf_counter() - started):.0f}")
        bar.close()
        write_atomic(out, "".join(line + "\n" for line in lines))
        shards[path.name] = len(records)
        write_json(summary_path, {"model": model, "window": scorer.window, "shards": shards})
    seconds = time.perf_counter() - started
    summary = {"model": model, "window": scorer.window, "shards": shards, "documents": sum(shards.values()),
               "scored_tokens_this_run": tokens, "seconds": seconds}  # fmt: skip
    write_json(summary_path, summary)
    return summary
