"""A lowres vocabulary as a Hugging Face tokenizer (`tokenizer.json`), and back.

`AutoTokenizer.from_pretrained` of the written directory encodes text to the ids lowres's seqio
vocabulary gives: a SentencePiece model goes through transformers' own converter, which follows the
model's normalizer, dummy prefix and byte fallback; a byte vocabulary becomes a tokenizer whose only
pieces are the 256 byte tokens (ids 3..258, as in ByT5). Mode tokens, language tags and task tags
(SentencePiece control symbols) and the sentinels `<extra_id_i>` (id vocab_size - 1 - i) become
special tokens at the same ids. An encoder-decoder tokenizer appends EOS (`</s>`) as T5's does; a
decoder-only one starts each sequence with id 0, the token seqio's decoder inputs start with.

Needs `transformers` (the `hf` extra).
"""

from __future__ import annotations

from pathlib import Path

import seqio

from lowres.data.vocab.byte_vocabulary import NUM_BYTES, NUM_SPECIAL, ReservedByteVocabulary
from lowres.errors import DataError, UsageError

SENTENCEPIECE_FILES = ("spiece.model", "tokenizer.model")  # T5 / mT5, Llama / Mistral


def require_transformers():
    """The transformers module, or a one-line error saying how to install it."""
    try:
        import transformers
    except ImportError as error:
        raise UsageError("Hugging Face export and import need transformers: pip install 'lowres[hf]'") from error
    return transformers


def _sentencepiece_tokenizer(vocabulary: seqio.SentencePieceVocabulary):
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from tokenizers import AddedToken

    require_transformers()
    from transformers.convert_slow_tokenizer import SpmConverter

    proto = sentencepiece_proto(vocabulary)
    pieces = [(piece.piece, piece.score) for piece in proto.pieces]
    if proto.trainer_spec.model_type == 2:  # BPE: the converter takes a piece -> id dict
        pieces = {piece: i for i, (piece, _) in enumerate(pieces)}
    tokenizer = SpmConverter.build_tokenizer_from_spm_proto(proto, pieces)
    control = model_pb2.ModelProto.SentencePiece.Type.CONTROL
    specials = [AddedToken(p.piece, special=True, normalized=False) for p in proto.pieces if p.type == control]
    return tokenizer, specials, {"unk_token": proto.trainer_spec.unk_piece or "<unk>"}


def sentencepiece_proto(vocabulary: seqio.SentencePieceVocabulary):
    """The vocabulary's SentencePiece model as trained: seqio's `sp_model` carries its extra ids (the
    sentinels) as trailing user-defined pieces, which the HF tokenizer adds as special tokens instead."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(vocabulary.sp_model)
    extra = vocabulary.extra_ids
    if extra and all(p.piece.lstrip("\u2581").startswith("<extra_id_") for p in proto.pieces[len(proto.pieces) - extra:]):
        del proto.pieces[len(proto.pieces) - extra:]
    return proto


def _byte_tokenizer(vocabulary: ReservedByteVocabulary):
    from tokenizers import AddedToken, Tokenizer, decoders, models

    names = ["<pad>", "</s>", "<unk>"] + [f"<0x{b:02X}>" for b in range(NUM_BYTES)]
    # No merges and no text pieces: every character falls back to its UTF-8 byte tokens.
    tokenizer = Tokenizer(models.BPE(vocab={name: i for i, name in enumerate(names)}, merges=[],
                                     unk_token="<unk>", byte_fallback=True))  # fmt: skip
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    specials = [AddedToken(name, special=True, normalized=False) for name in names[:NUM_SPECIAL]]
    specials += [AddedToken(t, special=True, normalized=False) for t in vocabulary.reserved_tokens]
    return tokenizer, specials, {"unk_token": "<unk>"}


def write_tokenizer(vocabulary: seqio.Vocabulary, directory: Path, decoder_only: bool) -> None:
    """Writes `tokenizer.json` and `tokenizer_config.json` (and the SentencePiece model) to `directory`."""
    from tokenizers import AddedToken, processors

    transformers = require_transformers()
    if isinstance(vocabulary, ReservedByteVocabulary):
        tokenizer, specials, names = _byte_tokenizer(vocabulary)
        num_sentinels = vocabulary.num_sentinels
    elif isinstance(vocabulary, seqio.SentencePieceVocabulary):
        tokenizer, specials, names = _sentencepiece_tokenizer(vocabulary)
        num_sentinels = vocabulary.extra_ids
        (directory / "spiece.model").write_bytes(sentencepiece_proto(vocabulary).SerializeToString())
    else:
        raise DataError(f"cannot export a {type(vocabulary).__name__} as a Hugging Face tokenizer")
    tokenizer.add_special_tokens(specials)
    # Sentinel i sits at vocab_size - 1 - i: add them from the highest index down so ids count up.
    sentinels = [f"<extra_id_{i}>" for i in reversed(range(num_sentinels))]
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in sentinels])
    if tokenizer.get_vocab_size(with_added_tokens=True) != vocabulary.vocab_size:
        raise DataError(f"tokenizer has {tokenizer.get_vocab_size(with_added_tokens=True)} ids but the vocabulary "
                        f"{vocabulary.vocab_size}; the vocabulary file looks damaged")  # fmt: skip
    # Id 0 pads and starts decoder inputs (seqio); EOS is the vocabulary's (1 in lowres's and T5's layout).
    pad, eos = tokenizer.id_to_token(0), tokenizer.id_to_token(vocabulary.eos_id)
    if decoder_only:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{pad} $A", pair=f"{pad} $A $B", special_tokens=[(pad, 0)])
        extra = {"bos_token": pad}
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, vocabulary.eos_id)])
        extra = {}
    names["unk_token"] = names["unk_token"] if names["unk_token"] not in (pad, eos) else None
    reserved = [t.content for t in specials if t.content not in (pad, eos, names["unk_token"])]
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, eos_token=eos, **names, **extra,
        additional_special_tokens=reserved + sentinels,
    )  # fmt: skip
    fast.save_pretrained(str(directory))


def sentencepiece_file(directory: Path) -> Path | None:
    """The SentencePiece model an HF directory ships (T5's spiece.model, Llama's tokenizer.model), if any."""
    return next((directory / name for name in SENTENCEPIECE_FILES if (directory / name).is_file()), None)
