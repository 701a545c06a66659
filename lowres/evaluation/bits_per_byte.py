"""Per-language bits per byte: a tokenizer-independent measure of how well a model predicts text.

bits/byte = total NLL of the document tokens (plus one EOS per document) in bits, divided by the
UTF-8 bytes of the documents plus one per document (the EOS stands for the line break). The
encoder-decoder scores text in UL2's S2S mode: each window of targets is predicted by the decoder
with the preceding tokens of the same document as the encoder prefix.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import jax
import numpy as np

from lowres.data import vocab as vocab_lib

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


def pad_batch(examples: Sequence[tuple[list[int], list[int]]], inputs_length: int, targets_length: int, batch_size: int):
    """Encoder-decoder features (as seqio's converter names them) for up to `batch_size` examples."""
    enc = np.zeros((batch_size, inputs_length), np.int32)
    tgt = np.zeros((batch_size, targets_length), np.int32)
    for row, (inputs, targets) in enumerate(examples):
        enc[row, : len(inputs)] = inputs
        tgt[row, : len(targets)] = targets
    dec_in = np.zeros_like(tgt)
    dec_in[:, 1:] = tgt[:, :-1]
    enc_seg = (enc != 0).astype(np.int32)
    weights = (tgt != 0).astype(np.int32)
    # Decoder position 0 holds the start token 0, so segments come from the targets' extent.
    dec_seg = np.zeros_like(tgt)
    for row, (_, targets) in enumerate(examples):
        dec_seg[row, : len(targets)] = 1
    positions = lambda a: np.broadcast_to(np.arange(a.shape[1], dtype=np.int32), a.shape).copy()  # noqa: E731
    return {
        "encoder_input_tokens": enc,
        "decoder_input_tokens": dec_in,
        "decoder_target_tokens": tgt,
        "decoder_loss_weights": weights,
        "encoder_segment_ids": enc_seg,
        "decoder_segment_ids": dec_seg,
        "encoder_positions": positions(enc),
        "decoder_positions": positions(tgt),
    }


def model_bits_per_byte(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    vocabulary,
    documents: dict[str, list[str]],
    inputs_length: int,
    targets_length: int,
    batch_size: int = 32,
    mode_token: str | None = "[S2S]",
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> dict[str, dict[str, float]]:
    """Bits per byte, tokens and bytes per language under `score_fn` (summed NLL per example, nats)."""
    mode_id = vocab_lib.reserved_id(vocabulary, mode_token) if mode_token else None
    results = {}
    for lang in progress(list(documents)):
        docs = documents[lang]
        token_docs = [vocabulary.encode(doc) for doc in docs]
        examples = scoring_examples(token_docs, inputs_length, targets_length, mode_id, vocabulary.eos_id)
        total_nll = 0.0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            scores = np.asarray(score_fn(pad_batch(chunk, inputs_length, targets_length, batch_size)))
            total_nll += float(scores[: len(chunk)].sum())
        num_bytes = document_bytes(docs)
        results[lang] = {
            "bits_per_byte": total_nll / LN2 / num_bytes,
            "tokens": sum(len(t) + 1 for t in token_docs),
            "bytes": num_bytes,
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


def jitted_scorer(graphdef, params, rest):
    """A jitted per-example NLL function over padded batches for restored parameters."""
    from lowres.training.step import score_batch

    fn = jax.jit(functools.partial(score_batch, graphdef=graphdef, rest=rest))
    return lambda batch: fn(params, batch)
