"""Byte-level vocabulary in the ByT5 layout, with reserved ids for mode tokens and language tags.

Layout (seqio.ByteVocabulary plus extra ids):
    0 pad, 1 eos, 2 unk, 3..258 the 256 UTF-8 byte values (byte b has id b + 3),
    259 .. 259+R-1          reserved tokens ([NLU], [NLG], [S2S], <2xxx_Scrp>, task tags) in order,
    259+R .. 259+R+S-1      sentinels, counted down from the top as in T5: sentinel i = vocab_size - 1 - i.
Reserved tokens take the *bottom* of seqio's extra ids so sentinel ids follow the same rule as for
SentencePiece models. Text never encodes to a reserved id or a sentinel, and decoding drops them.
The vocabulary is stored as a small JSON file (`to_json`: kind, reserved tokens, number of sentinels).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import seqio

from lowres.errors import ConfigError, DataError

BYTE_VOCAB_FORMAT = "lowres-byte-vocabulary"
NUM_SPECIAL = 3
NUM_BYTES = 256


class ReservedByteVocabulary(seqio.ByteVocabulary):
    """seqio.ByteVocabulary whose extra ids hold `reserved_tokens` first and `num_sentinels` sentinels last."""

    def __init__(self, reserved_tokens: Sequence[str] = (), num_sentinels: int = 100):
        tokens = tuple(reserved_tokens)
        if len(set(tokens)) != len(tokens):
            duplicates = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ConfigError(f"reserved tokens must be unique; repeated: {duplicates}")
        if num_sentinels < 0:
            raise ConfigError(f"num_sentinels must be >= 0, got {num_sentinels}")
        super().__init__(extra_ids=len(tokens) + num_sentinels)
        self.reserved_tokens = tokens
        self.num_sentinels = num_sentinels
        first = NUM_SPECIAL + NUM_BYTES
        self.reserved_ids = {token: first + i for i, token in enumerate(tokens)}

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ReservedByteVocabulary)
            and other.reserved_tokens == self.reserved_tokens
            and other.num_sentinels == self.num_sentinels
        )

    def __hash__(self) -> int:
        return hash((self.reserved_tokens, self.num_sentinels))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": BYTE_VOCAB_FORMAT,
                "kind": "bytes",
                "reserved_tokens": list(self.reserved_tokens),
                "num_sentinels": self.num_sentinels,
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n"


def load_byte_vocabulary(path: str | os.PathLike, num_sentinels: int | None = None) -> ReservedByteVocabulary:
    """Reads a vocabulary stored as its `to_json()`; `num_sentinels`, if given, must match the file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is not a byte-vocabulary JSON file ({error})") from error
    if not isinstance(spec, dict) or spec.get("format") != BYTE_VOCAB_FORMAT:
        raise DataError(f"{path} is not a lowres byte vocabulary (expected \"format\": \"{BYTE_VOCAB_FORMAT}\")")
    if num_sentinels is not None and num_sentinels != spec["num_sentinels"]:
        raise ConfigError(
            f"{path} has {spec['num_sentinels']} sentinels but {num_sentinels} were asked for; "
            "set VocabularyConfig.num_sentinels to match the stored vocabulary"
        )
    return ReservedByteVocabulary(spec["reserved_tokens"], spec["num_sentinels"])


def is_byte_vocabulary_file(path: str | os.PathLike) -> bool:
    """True for a file that starts like a byte vocabulary's `to_json()`."""
    with open(path, "rb") as handle:
        head = handle.read(256)
    return head.lstrip().startswith(b"{") and BYTE_VOCAB_FORMAT.encode() in head
