"""Held-out span infilling: how well a model fills masked spans of text it never trained on.

Each held-out document is tokenized and cut into windows of the raw length UL2's R-denoiser takes at
the run's feature lengths (mean span 3, corruption rate 0.15: `R_DENOISER`), and each window is
corrupted by lowres' own span corruption (lowres.data.tasks.denoisers) with a generator seeded by
(seed, document, window), so every evaluation of every run masks the same spans of the same text.
Examples are laid out as the run's objective lays out an R-denoiser example:

    inputs   [NLU] (when the run trained with mode tokens), the text with each span replaced by a sentinel, EOS
    targets  each sentinel followed by its span, then EOS

and go through the architecture's feature converter under the run's decoder attention (for
decoder-only models one sequence, bidirectional over the inputs for prefix-LM runs, causal for
causal ones). The targets are scored teacher-forced:

    loss                target NLL / target tokens (nats; sentinels, span tokens and the EOS all count)
    bits_per_byte       target NLL in bits / UTF-8 bytes of the masked text
    span_bits_per_byte  the NLL of the span tokens alone in bits / the same bytes: the masked text's cost
                        without the format (which sentinel comes next, where the targets end)

A model that never saw sentinels (a causal LM) is scored the same way; that is the comparison. A
span's bytes are those its tokens add to the decoded document (differences of decoded prefixes), so
a span whose first piece carries a word's leading space counts that space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lowres.data.tasks import denoisers
from lowres.data.tasks.objectives import check_sentinels
from lowres.data.vocab.vocabulary import reserved_id
from lowres.evaluation.bits_per_byte import LN2, summed_target_nll
from lowres.models.architecture import Architecture

R_DENOISER = denoisers.SpanCorruption(mean_span_length=3.0, noise_density=0.15, mode_token="[NLU]")
SEED = 0  # fixed: the masked spans are part of the benchmark, not of a run


@dataclasses.dataclass(frozen=True)
class InfillingExample:
    inputs: list[int]  # [mode] + text with sentinels + EOS
    targets: list[int]  # sentinel, span, sentinel, span, ..., EOS
    masked_tokens: int
    masked_bytes: int
    spans: int


def infilling_mode_token(mode_tokens: bool) -> str | None:
    """The mode token infilling examples start with: the R-denoiser's, or None for runs without mode tokens."""
    return R_DENOISER.mode_token if mode_tokens else None


def infilling_denoiser(mode_token: str | None, inputs_length: int, targets_length: int, vocabulary):
    """The R-denoiser with `mode_token`; a ConfigError when the lengths or the sentinels do not suffice."""
    denoiser = dataclasses.replace(R_DENOISER, mode_token=mode_token)
    denoisers.raw_length(denoiser, inputs_length, targets_length)
    check_sentinels(denoiser, inputs_length, targets_length, vocabulary)
    return denoiser


def infilling_examples(
    vocabulary, documents: Sequence[str], inputs_length: int, targets_length: int,
    mode_token: str | None = "[NLU]", seed: int = SEED,
) -> list[InfillingExample]:  # fmt: skip
    """The R-denoiser examples of every window of every document (windows under 2 tokens are skipped)."""
    denoiser = infilling_denoiser(mode_token, inputs_length, targets_length, vocabulary)
    raw = denoisers.raw_length(denoiser, inputs_length, targets_length)
    mode_id = reserved_id(vocabulary, mode_token) if mode_token else None
    examples = []
    for doc_index, text in enumerate(documents):
        tokens = np.asarray(vocabulary.encode(text), np.int32)
        bytes_before = _prefix_bytes(vocabulary, tokens)
        for window_index, start in enumerate(range(0, len(tokens), raw)):
            window = tokens[start : start + raw]
            if len(window) < 2:
                continue
            key = [seed, doc_index, window_index]
            inputs, targets = denoisers.apply(denoiser, window, np.random.default_rng(key), mode_id=mode_id,
                                              vocab_size=vocabulary.vocab_size)  # fmt: skip
            inputs, targets = denoisers.finish(inputs, targets, inputs_length, targets_length, vocabulary.eos_id)
            # The same draws again give the positions the sentinels replaced.
            mask = denoisers.random_spans_noise_mask(len(window), denoiser.noise_density, denoiser.mean_span_length,
                                                     np.random.default_rng(key))  # fmt: skip
            edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))) + start
            masked_bytes = sum(bytes_before(end) - bytes_before(begin) for begin, end in zip(edges[0::2], edges[1::2]))
            examples.append(InfillingExample(inputs.tolist(), targets.tolist(), int(mask.sum()), int(masked_bytes),
                                             len(edges) // 2))  # fmt: skip
    return examples


def _prefix_bytes(vocabulary, tokens: np.ndarray) -> Callable[[int], int]:
    """end -> UTF-8 bytes of the first `end` tokens decoded (memoised)."""
    known: dict[int, int] = {}

    def bytes_before(end: int) -> int:
        if end not in known:
            known[end] = len(vocabulary.decode(tokens[:end].tolist()).encode("utf-8"))
        return known[end]

    return bytes_before


def model_infilling(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    vocabulary,
    documents: Mapping[str, Sequence[str]],
    inputs_length: int,
    targets_length: int,
    architecture: Architecture | str = "encoder_decoder",
    batch_size: int = 32,
    mode_token: str | None = "[NLU]",
    decoder_attention: str = "prefix",
    seed: int = SEED,
) -> dict[str, dict[str, Any]]:
    """Per language: `loss` (nats per target token), `bits_per_byte` (bits per masked byte), their span-token
    parts `span_loss` (nats per masked token) and `span_bits_per_byte`, and the counts, under `score_fn`
    (summed NLL per feature row, nats; called twice per batch: all targets, then the span tokens alone)."""
    results = {}
    for lang, docs in documents.items():
        examples = infilling_examples(vocabulary, docs, inputs_length, targets_length, mode_token, seed)
        if not examples:
            continue
        pairs = [(e.inputs, e.targets) for e in examples]
        layout = (architecture, inputs_length, targets_length, batch_size, decoder_attention)
        nll, scored = summed_target_nll(score_fn, pairs, *layout)
        # Span tokens: below the lowest sentinel any example uses (text never encodes to one), not EOS.
        lowest_sentinel = vocabulary.vocab_size - max(e.spans for e in examples)
        span_nll, span_scored = summed_target_nll(
            score_fn, pairs, *layout, counts=lambda t, low=lowest_sentinel: (t < low) & (t != vocabulary.eos_id))
        target_tokens = sum(len(e.targets) for e in examples)
        masked_tokens = sum(e.masked_tokens for e in examples)
        if (scored, span_scored) != (target_tokens, masked_tokens):
            raise AssertionError(f"{lang}: scored {scored} target tokens of {target_tokens}, {span_scored} span "
                                 f"tokens of {masked_tokens}")  # fmt: skip
        masked_bytes = max(sum(e.masked_bytes for e in examples), 1)
        results[lang] = {
            "loss": nll / target_tokens,
            "bits_per_byte": nll / LN2 / masked_bytes,
            "span_loss": span_nll / masked_tokens,
            "span_bits_per_byte": span_nll / LN2 / masked_bytes,
            "nll": nll,
            "target_tokens": target_tokens,
            "masked_tokens": masked_tokens,
            "masked_bytes": masked_bytes,
            "examples": len(examples),
            "documents": len(docs),
        }
    return results


def infilling_metrics(scores: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """`model_infilling`'s scores as evaluation metrics: `eval/<lang>/infilling_loss`,
    `eval/<lang>/infilling_bits_per_byte`, `eval/<lang>/infilling_span_bits_per_byte`, `eval/infilling/loss`
    (over all target tokens, as `eval/loss`) and `eval/infilling/bits_per_byte` and
    `eval/infilling/span_bits_per_byte` (means over languages, as `eval/bits_per_byte`)."""
    if not scores:
        return {}
    metrics = {}
    for lang, row in scores.items():
        metrics[f"eval/{lang}/infilling_loss"] = row["loss"]
        metrics[f"eval/{lang}/infilling_bits_per_byte"] = row["bits_per_byte"]
        metrics[f"eval/{lang}/infilling_span_bits_per_byte"] = row["span_bits_per_byte"]
    metrics["eval/infilling/loss"] = (sum(r["nll"] for r in scores.values())
                                      / sum(r["target_tokens"] for r in scores.values()))  # fmt: skip
    for name in ("bits_per_byte", "span_bits_per_byte"):
        metrics[f"eval/infilling/{name}"] = float(np.mean([r[name] for r in scores.values()]))
    return metrics
