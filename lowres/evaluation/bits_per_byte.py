"""Per-language bits per byte: a tokenizer-independent measure of how well a model predicts text.

bits/byte = total NLL of the document tokens (plus one EOS per document) in bits, divided by the
UTF-8 bytes of the documents plus one per document (the EOS stands for the line break). Text is
scored in UL2's S2S mode: each window of target tokens is predicted with the preceding tokens of
the same document as the prefix (the encoder input, or the prefix of a decoder: bidirectional, or
causal for runs trained with causal decoder attention), after the [S2S] mode token when the run's
objective used mode tokens (RunInfo.scoring_mode_token and RunInfo.decoder_attention, from the run's
lowres.json).
Windows go through the same seqio feature converter, with packing, as training batches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.models.architecture import Architecture, architecture_for

LN2 = math.log(2.0)


def document_bytes(documents: Sequence[str]) -> int:
    return sum(len(doc.encode("utf-8")) + 1 for doc in documents)


def scoring_examples(
    token_docs: Iterable[Sequence[int]], inputs_length: int, targets_length: int, mode_id: int | None, eos_id: int
) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) windows that together cover every token of every document exactly once."""
    prefix_room = inputs_length - 1 - (mode_id is not None)
    examples = []
    for tokens in token_docs:
        tokens = list(tokens) + [eos_id]
        for start in range(0, len(tokens), targets_length):
            prefix = tokens[max(0, start - prefix_room) : start] if prefix_room > 0 else []
            inputs = ([mode_id] if mode_id is not None else []) + prefix + [eos_id]
            examples.append((inputs, tokens[start : start + targets_length]))
    return examples


def feature_batches(
    examples: Sequence[tuple[list[int], list[int]]],
    architecture: Architecture | str,
    inputs_length: int,
    targets_length: int,
    batch_size: int,
    decoder_attention: str = "prefix",
) -> Iterable[dict[str, np.ndarray]]:
    """Packed model features for the windows, via the architecture's seqio converter (without the
    bidirectional-prefix mask when a decoder-only run trained with causal attention)."""
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"inputs": np.asarray(i, np.int32), "targets": np.asarray(t, np.int32)} for i, t in examples),
        output_signature={
            "inputs": tf.TensorSpec([None], tf.int32),
            "targets": tf.TensorSpec([None], tf.int32),
        },
    )
    converter = architecture_for(architecture).feature_converter(pack=True, decoder_attention=decoder_attention)
    features = converter(dataset, {"inputs": inputs_length, "targets": targets_length})
    return features.padded_batch(batch_size).as_numpy_iterator()


def summed_target_nll(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    examples: Sequence[tuple[list[int], list[int]]],
    architecture: Architecture | str,
    inputs_length: int,
    targets_length: int,
    batch_size: int,
    decoder_attention: str = "prefix",
    counts: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, int]:
    """(summed target NLL in nats, target tokens scored) of (inputs, targets) examples under `score_fn`,
    in `feature_batches` of `batch_size` rows (the last padded with empty rows: one compiled shape).
    With `counts`, only target tokens where `counts(tokens)` is true are scored."""
    total_nll, scored_tokens = 0.0, 0
    for batch in feature_batches(examples, architecture, inputs_length, targets_length, batch_size, decoder_attention):
        if counts is not None:
            weights = batch["decoder_loss_weights"] * counts(batch["decoder_target_tokens"])
            batch = {**batch, "decoder_loss_weights": weights.astype(batch["decoder_loss_weights"].dtype)}
        rows = len(batch["decoder_target_tokens"])
        if rows < batch_size:
            batch = {k: np.pad(v, [(0, batch_size - rows), (0, 0)]) for k, v in batch.items()}
        total_nll += float(np.asarray(score_fn(batch)).sum())
        scored_tokens += int(batch["decoder_loss_weights"].sum())
    return total_nll, scored_tokens


def model_bits_per_byte(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    vocabulary,
    documents: dict[str, list[str]],
    inputs_length: int,
    targets_length: int,
    architecture: Architecture | str = "encoder_decoder",
    batch_size: int = 32,
    mode_token: str | None = "[S2S]",
    progress: Callable[[Iterable], Iterable] = lambda x: x,
    decoder_attention: str = "prefix",
) -> dict[str, dict[str, float]]:
    """Bits per byte, NLL per token and per whitespace word (nats; each document's EOS counts as a token
    and ends a word), tokens, bytes and words per language under `score_fn` (summed NLL per row, nats)."""
    mode_id = vocab_lib.reserved_id(vocabulary, mode_token) if mode_token else None
    results = {}
    for lang in progress(list(documents)):
        docs = documents[lang]
        token_docs = [vocabulary.encode(doc) for doc in docs]
        examples = scoring_examples(token_docs, inputs_length, targets_length, mode_id, vocabulary.eos_id)
        total_nll, scored_tokens = summed_target_nll(score_fn, examples, architecture, inputs_length, targets_length,
                                                     batch_size, decoder_attention)  # fmt: skip
        num_tokens = sum(len(t) + 1 for t in token_docs)
        if scored_tokens != num_tokens:
            raise AssertionError(f"{lang}: scored {scored_tokens} tokens of {num_tokens}; windows lost tokens")
        num_bytes = document_bytes(docs)
        num_words = sum(len(doc.split()) + 1 for doc in docs)  # + 1: the EOS ends the document's last word
        results[lang] = {
            "bits_per_byte": total_nll / LN2 / num_bytes,
            "nll_per_token": total_nll / num_tokens,
            "nll_per_word": total_nll / num_words,
            "tokens": num_tokens,
            "bytes": num_bytes,
            "words": num_words,
            "documents": len(docs),
        }
    return results


def unigram_byte_bits_per_byte(train_documents: Sequence[str], eval_documents: Sequence[str]) -> float:
    """Bits per byte of an add-one-smoothed unigram byte model fitted on `train_documents`."""
    counts = Counter()
    for doc in train_documents:
        counts.update(doc.encode("utf-8") + b"\n")
    total = sum(counts.values()) + 256
    log_probs = {b: math.log2((counts.get(b, 0) + 1) / total) for b in range(256)}
    eval_bytes = b"".join(doc.encode("utf-8") + b"\n" for doc in eval_documents)
    return -sum(log_probs[b] for b in eval_bytes) / len(eval_bytes)
