"""Vocabulary extension: append a new SentencePiece model's pieces to an existing one, for model surgery.

The old model's pieces keep their ids; new pieces (and new control symbols such as a new
language's `<2xxx_Scrp>` tag) are appended after them. seqio's extra ids (sentinels) sit after the
SentencePiece pieces, so they move up by the number of added pieces; sentinel i stays at
`vocab_size - 1 - i`. The returned `VocabularyExtension` carries what lowres.models.surgery needs:
`id_map` (new id -> old id, None for added tokens) and `new_token_pieces` (each added piece as
old-vocabulary ids, for mean-of-pieces initialisation).

Scores: a unigram model's added pieces keep their log-probabilities from the new model; a BPE
model's added pieces rank after every old merge, in the new model's merge order.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.errors import DataError, MissingFileError
from lowres.files import read_json, write_atomic, write_json

_Type = model_pb2.ModelProto.SentencePiece.Type
# Piece types taken over from the new model; UNKNOWN and BYTE pieces exist in both already.
_ADDED_TYPES = (_Type.NORMAL, _Type.USER_DEFINED, _Type.CONTROL)
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
# Where a run extended from a base model (VocabularyConfig.base_model) records the extension.
EXTENSION_FILE = "vocab/extension.json"


@dataclasses.dataclass(frozen=True)
class VocabularyExtension:
    """The extended model and how its ids relate to the old seqio vocabulary (pieces + sentinels)."""

    path: Path
    old_vocab_size: int
    new_vocab_size: int
    num_sentinels: int
    added_pieces: tuple[str, ...]
    old_to_new: dict[int, int]
    new_token_pieces: dict[int, list[int]]

    def to_record(self) -> dict:
        """A JSON-ready record (what a run directory keeps in EXTENSION_FILE for model surgery)."""
        return {
            "path": str(self.path), "old_vocab_size": self.old_vocab_size, "new_vocab_size": self.new_vocab_size,
            "num_sentinels": self.num_sentinels, "added_pieces": list(self.added_pieces),
            "old_to_new": sorted(self.old_to_new.items()),
            "new_token_pieces": {str(k): v for k, v in sorted(self.new_token_pieces.items())},
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: Mapping) -> VocabularyExtension:
        return cls(
            path=Path(record["path"]), old_vocab_size=int(record["old_vocab_size"]),
            new_vocab_size=int(record["new_vocab_size"]), num_sentinels=int(record["num_sentinels"]),
            added_pieces=tuple(record["added_pieces"]), old_to_new={int(a): int(b) for a, b in record["old_to_new"]},
            new_token_pieces={int(k): list(v) for k, v in record["new_token_pieces"].items()},
        )  # fmt: skip

    @property
    def id_map(self) -> list[int | None]:
        """Indexed by new id: the old id, or None for an added token (lowres.models.surgery's id map)."""
        entries: list[int | None] = [None] * self.new_vocab_size
        for old, new in self.old_to_new.items():
            entries[new] = old
        return entries


def _load_proto(path: str | os.PathLike) -> model_pb2.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"SentencePiece model {path} does not exist")
    proto = model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise DataError(f"{path} is not a SentencePiece model ({error})") from error
    if not proto.pieces:
        raise DataError(f"{path} is not a SentencePiece model (it has no pieces)")
    return proto


def _no_prefix_processor(proto: model_pb2.ModelProto) -> spm.SentencePieceProcessor:
    """The model without its dummy space prefix, so a piece's surface string encodes exactly as written."""
    plain = model_pb2.ModelProto()
    plain.CopyFrom(proto)
    plain.normalizer_spec.add_dummy_prefix = False
    plain.normalizer_spec.remove_extra_whitespaces = False
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(plain.SerializeToString())
    return processor


def extend_vocabulary(
    base_model: str | os.PathLike,
    addition_model: str | os.PathLike | None,
    output_path: str | os.PathLike,
    num_sentinels: int = 100,
    max_new_pieces: int | None = None,
    reserved: Iterable[str] = (),
) -> VocabularyExtension:
    """Writes `base_model` plus the pieces of `addition_model` it lacks to `output_path` (atomically).

    `max_new_pieces` keeps the highest-scoring unigram pieces (or the earliest BPE merges); control
    symbols of the addition (new language tags) are always kept, and so are the `reserved` tokens
    (mode tokens, language tags), added as control symbols where neither model has them. With no
    `addition_model`, only `reserved` tokens are added. `num_sentinels` is the run's seqio extra-id
    count, the same before and after.
    """
    base = _load_proto(base_model)
    addition = _load_proto(addition_model) if addition_model is not None else model_pb2.ModelProto()
    base_type = _MODEL_TYPES.get(base.trainer_spec.model_type, str(base.trainer_spec.model_type))
    addition_type = _MODEL_TYPES.get(addition.trainer_spec.model_type, str(addition.trainer_spec.model_type))
    if addition_model is None:
        addition_type = base_type
    if base_type != addition_type or base_type not in ("unigram", "bpe"):
        raise DataError(
            f"can only extend unigram or BPE models with one of the same type; {base_model} is {base_type}, "
            f"{addition_model} is {addition_type}"
        )
    known = {piece.piece for piece in base.pieces}
    candidates = [p for p in addition.pieces if p.type in _ADDED_TYPES and p.piece not in known]
    controls = [p for p in candidates if p.type == _Type.CONTROL]
    normal = [p for p in candidates if p.type != _Type.CONTROL]
    for token in dict.fromkeys(reserved):
        if token not in known and all(p.piece != token for p in controls):
            controls.append(model_pb2.ModelProto.SentencePiece(piece=token, score=0.0, type=_Type.CONTROL))
    if max_new_pieces is not None:
        if base_type == "unigram":
            normal = sorted(normal, key=lambda p: -p.score)
        normal = normal[:max_new_pieces]
    lowest = min(piece.score for piece in base.pieces)
    extended = model_pb2.ModelProto()
    extended.CopyFrom(base)
    added = []
    for rank, piece in enumerate(controls + normal):
        new_piece = extended.pieces.add()
        new_piece.piece, new_piece.type = piece.piece, piece.type
        new_piece.score = piece.score if base_type == "unigram" or piece.type == _Type.CONTROL else lowest - 1 - rank
        added.append(piece.piece)
    extended.trainer_spec.vocab_size = len(extended.pieces)
    write_atomic(output_path, extended.SerializeToString())

    old_pieces = len(base.pieces)
    old_to_new = {i: i for i in range(old_pieces)}
    old_to_new.update({old_pieces + j: old_pieces + len(added) + j for j in range(num_sentinels)})
    splitter = _no_prefix_processor(base)
    new_token_pieces = {}
    for offset, (piece, source) in enumerate(zip(added, controls + normal, strict=True)):
        surface = "" if source.type == _Type.CONTROL else piece.replace("\u2581", " ")
        new_token_pieces[old_pieces + offset] = list(splitter.encode(surface)) if surface else []
    return VocabularyExtension(
        path=Path(output_path),
        old_vocab_size=old_pieces + num_sentinels,
        new_vocab_size=old_pieces + len(added) + num_sentinels,
        num_sentinels=num_sentinels,
        added_pieces=tuple(added),
        old_to_new=old_to_new,
        new_token_pieces=new_token_pieces,
    )


def train_extension(
    base_model: str | os.PathLike,
    texts_by_language: Mapping[str, Iterable[str]],
    output_path: str | os.PathLike,
    config: vocab_lib.VocabularyConfig = vocab_lib.VocabularyConfig(),
    max_new_pieces: int | None = None,
) -> VocabularyExtension:
    """Trains a SentencePiece model on the new languages' text (`config`) and extends `base_model` with it."""
    with tempfile.TemporaryDirectory() as scratch:
        addition = vocab_lib.train_vocabulary(texts_by_language, Path(scratch) / "addition.model", config)
        return extend_vocabulary(base_model, addition, output_path, config.num_sentinels, max_new_pieces)


def extend_for_run(
    model_dir: Path,
    path: Path,
    config: vocab_lib.VocabularyConfig,
    texts_by_language: Mapping[str, Iterable[str]],
    tag_languages: Iterable[str] = (),
) -> VocabularyExtension:
    """A run's vocabulary as `config.base_model` extended: the run's reserved tokens it lacks, and up to
    `config.extend_pieces` pieces of a model trained (as `config` says) on the run's text. Written to
    `path` with its record in `model_dir / EXTENSION_FILE`."""
    languages = list(dict.fromkeys([*texts_by_language, *tag_languages]))
    reserved = vocab_lib.reserved_tokens(languages, config.task_tags)
    with tempfile.TemporaryDirectory() as scratch:
        addition = None
        if config.extend_pieces:
            addition = vocab_lib.train_vocabulary(texts_by_language, Path(scratch) / "addition.model", config,
                                                  tag_languages)  # fmt: skip
        extension = extend_vocabulary(config.base_model, addition, path, config.num_sentinels,
                                      config.extend_pieces or None, reserved=reserved)  # fmt: skip
    write_json(model_dir / EXTENSION_FILE, extension.to_record())
    return extension


def read_run_extension(model_dir: Path) -> VocabularyExtension | None:
    """The extension a run's vocabulary was built with, or None for a vocabulary trained from scratch."""
    path = Path(model_dir) / EXTENSION_FILE
    return VocabularyExtension.from_record(read_json(path, "vocabulary extension record")) if path.is_file() else None
