"""What a token-cache worker needs to turn text into exactly the ids `vocabulary.encode(text)` gives.

A `TokenizerSpec` is small, picklable and free of TensorFlow: a SentencePiece vocabulary travels as
the serialized model *as seqio loads it* (`SentencePieceVocabulary.sp_model`, i.e. with its extra-id
pieces appended), which the `sentencepiece` package loads directly; a byte vocabulary is UTF-8 bytes
plus the 3 special ids, as `seqio.ByteVocabulary` encodes. Worker processes import this module (and
numpy, sentencepiece), never seqio or TensorFlow. `tokenizer_spec` builds one from a vocabulary file,
a loaded vocabulary or an existing spec; only it imports lowres.data.vocab (and so seqio), lazily.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowres.errors import ConfigError

__all__ = ["TokenizerSpec", "tokenizer_spec"]

KINDS = ("sentencepiece", "bytes")
BYTE_OFFSET = 3  # seqio.ByteVocabulary: pad, eos, unk come first; byte b has id b + 3
MAX_UINT16_IDS = 2**16


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
    """A vocabulary reduced to what encoding needs, plus the identity the cache is keyed on.

    kind: "sentencepiece" or "bytes".
    vocab_size: number of ids (extra ids / sentinels included): ids are stored as uint16 when they
      all fit (vocab_size <= 65536), else uint32.
    fingerprint: `lowres.data.vocab.vocabulary.vocabulary_fingerprint` of the stored vocabulary.
    model: the serialized SentencePiece model exactly as seqio uses it (b"" for bytes).
    description: where the vocabulary came from, for messages.
    """

    kind: str
    vocab_size: int
    fingerprint: str
    model: bytes = b""
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"TokenizerSpec.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "sentencepiece" and not self.model:
            raise ConfigError("a SentencePiece TokenizerSpec needs the serialized model")

    @property
    def dtype(self) -> np.dtype:
        """Little-endian uint16 when every id fits, else uint32."""
        return np.dtype("<u2") if self.vocab_size <= MAX_UINT16_IDS else np.dtype("<u4")

    @functools.cached_property
    def tokenizer_sha256(self) -> str:
        """Digest of what actually encodes (the model with seqio's extra ids), beside the file fingerprint:
        if seqio ever changed how it patches the model, ids could change under an unchanged file."""
        payload = self.model if self.kind == "sentencepiece" else f"bytes+{BYTE_OFFSET}".encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()

    def encoder(self) -> Encoder:
        return Encoder(self)

    def summary(self) -> dict:
        """The JSON-able identity recorded in a cache manifest."""
        return {
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "tokenizer_sha256": self.tokenizer_sha256,
            "description": self.description,
        }


class Encoder:
    """Encodes batches of texts into one flat id array plus per-text lengths."""

    def __init__(self, spec: TokenizerSpec):
        self.spec = spec
        self.dtype = spec.dtype
        self._processor = None
        if spec.kind == "sentencepiece":
            import sentencepiece

            self._processor = sentencepiece.SentencePieceProcessor(model_proto=spec.model)

    def encode(self, text: str) -> list[int]:
        """Ids of one text, as `vocabulary.encode(text)` gives them."""
        if self._processor is not None:
            return self._processor.EncodeAsIds(text)
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids of all texts concatenated, as `dtype`; int64 length of each text in ids)."""
        if not texts:
            return np.zeros(0, self.dtype), np.zeros(0, np.int64)
        if self._processor is not None:
            ids = self._processor.encode(list(texts), out_type=int, num_threads=1)
            lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
            flat = np.fromiter(itertools.chain.from_iterable(ids), self.dtype, count=int(lengths.sum()))
            return flat, lengths
        encoded = [text.encode("utf-8") for text in texts]
        lengths = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
        flat = np.frombuffer(b"".join(encoded), np.uint8).astype(self.dtype)
        flat += BYTE_OFFSET
        return flat, lengths


def tokenizer_spec(vocabulary, num_sentinels: int | None = None) -> TokenizerSpec:
    """A TokenizerSpec from a vocabulary file (SentencePiece model or byte-vocabulary JSON; with
    `num_sentinels`, default 100), a loaded seqio/lowres vocabulary, or a TokenizerSpec (returned)."""
    if isinstance(vocabulary, TokenizerSpec):
        return vocabulary
    from lowres.data.vocab import (
        vocabulary as vocab_lib,  # seqio: the parent process only
    )

    if isinstance(vocabulary, (str, os.PathLike)):
        path = Path(vocabulary)
        sentinels = 100 if num_sentinels is None else num_sentinels
        loaded = vocab_lib.load_vocabulary(path, sentinels)
        fingerprint = vocab_lib.vocabulary_fingerprint(path, sentinels)
        return _from_loaded(loaded, fingerprint, str(path))
    if hasattr(vocabulary, "sentencepiece_model_file"):
        path = vocabulary.sentencepiece_model_file
        extra_ids = vocabulary.extra_ids
        if num_sentinels is not None and num_sentinels != extra_ids:
            raise ConfigError(f"the vocabulary has {extra_ids} extra ids but num_sentinels={num_sentinels}")
        return _from_loaded(vocabulary, vocab_lib.vocabulary_fingerprint(path, extra_ids), str(path))
    if hasattr(vocabulary, "reserved_tokens") and hasattr(vocabulary, "to_json"):
        # The fingerprint of the file `prepare_vocabulary` would store for it (its to_json()).
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            stored = Path(scratch) / "bytes.json"
            stored.write_text(vocabulary.to_json(), encoding="utf-8")
            fingerprint = vocab_lib.vocabulary_fingerprint(stored, vocabulary.num_sentinels)
        return _from_loaded(vocabulary, fingerprint, "byte vocabulary")
    raise ConfigError(
        f"cannot tokenize with {type(vocabulary).__name__}: pass a vocabulary file, a seqio "
        "SentencePieceVocabulary, a lowres ReservedByteVocabulary or a TokenizerSpec"
    )


def _from_loaded(vocabulary, fingerprint: str, description: str) -> TokenizerSpec:
    if hasattr(vocabulary, "sp_model"):
        return TokenizerSpec("sentencepiece", int(vocabulary.vocab_size), fingerprint, bytes(vocabulary.sp_model),
                             description)
    return TokenizerSpec("bytes", int(vocabulary.vocab_size), fingerprint, b"", description)
