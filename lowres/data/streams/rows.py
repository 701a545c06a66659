"""Model features for one batch at a time, in NumPy: the rows seqio's feature converters would emit.

The index-based sampler decides which examples form a batch (and, when packing, which examples share
a row); `RowConverter` lays those rows out as exactly the features the model's seqio converter
produces through tf.data: the same names, int32 dtypes, lengths and values, segment ids, positions,
shifted decoder inputs (0 (`bos_id`) at the start of every packed segment), loss weights and, for
the prefix LM, `decoder_causal_attention`. The converter is the object
`lowres.models.architecture.Architecture.feature_converter` returns; this module only inspects it
(its seqio base class, `pack`, `bos_id`, `loss_on_targets_only`, `MODEL_FEATURES`), so the data layer
does not import the models:

* `seqio.EncDecFeatureConverter`: encoder `inputs` (length I), decoder `targets` (length T).
* `seqio.PrefixLMFeatureConverter`: one decoder sequence `inputs + targets` (length I + T), loss on
  the targets only (`loss_on_targets_only=True`); `decoder_causal_attention` is 1 on the inputs and
  on the one position after them (where the first target is predicted), per packed segment.
* A PrefixLM subclass whose `MODEL_FEATURES` drop `decoder_causal_attention` (the causal decoder of
  `lowres.models`): the same features without it.

An example is `(inputs, targets)` (or a mapping with those keys), 1-D int arrays already ending in
EOS as seqio's `append_eos_after_trim` leaves them. Nothing is truncated: an example that does not fit
a row, or a row whose examples overflow it, raises `DataError` (seqio's converters raise too for an
over-long feature, through their input-length check). Examples seqio would mangle are refused rather
than copied (see the tests, which show each against seqio): a pad token (0) inside an example (seqio's
packer measures an example by its non-zero count and cuts it), empty targets (the prefix LM's
one-token stand-in then misaligns its masks with the next packed example, putting loss weight on
padding), and empty inputs in a packed encoder-decoder row (the encoder's segment ids then skip that
example, so later segments cross-attend to the wrong inputs). Empty inputs are fine unpacked and for
the decoder-only converters (a plain LM example).

`pack(examples, num_rows)` is seqio's greedy rule without its tf.data artefact: in order, an example
joins the current row if every side still has room, else it starts the next row; it stops at the first
example that does not fit once `num_rows` rows are open, and reports how many examples (a prefix) it
placed. seqio additionally flushes the open row after every `max(feature lengths)` examples (its
packer works on padded batches of that many examples); `pack` does not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import seqio

from lowres.errors import ConfigError, DataError

Example = Any  # (inputs, targets) or {"inputs": ..., "targets": ...}; each a 1-D int sequence
Batch = dict[str, np.ndarray]

ENC_DEC = "enc_dec"
PREFIX_LM = "prefix_lm"

# seqio converters that subclass a supported one but lay features out differently.
_UNSUPPORTED = tuple(
    cls
    for cls in (
        getattr(seqio, "PrePackedEncDecFeatureConverter", None),
        getattr(seqio, "PrefixSuffixLMFeatureConverter", None),
        getattr(seqio, "PrePackedLMFeatureConverter", None),
    )
    if cls is not None
)

_ENC_DEC_FEATURES = (
    "encoder_input_tokens",
    "decoder_target_tokens",
    "decoder_input_tokens",
    "decoder_loss_weights",
)
_ENC_DEC_PACKING = ("encoder_segment_ids", "decoder_segment_ids", "encoder_positions", "decoder_positions")
_PREFIX_LM_FEATURES = (
    "decoder_target_tokens",
    "decoder_input_tokens",
    "decoder_loss_weights",
    "decoder_causal_attention",
)
_LM_PACKING = ("decoder_segment_ids", "decoder_positions")


class Packed(NamedTuple):
    """What `RowConverter.pack` placed: `rows[r]` lists row r's examples in stream order; the first
    `num_placed` examples given were placed, in order, and the rest were not."""

    rows: list[list[Example]]
    num_placed: int


def _split(example: Example) -> tuple[Any, Any]:
    if type(example) is tuple:  # the common case, without the Mapping ABC check
        return example
    if isinstance(example, Mapping):
        return example["inputs"], example["targets"]
    inputs, targets = example
    return inputs, targets


@dataclasses.dataclass(frozen=True)
class RowConverter:
    """Lays out rows of examples as one model-feature batch; see the module docstring.

    Build it with `for_converter(converter, {"inputs": I, "targets": T})`.
    """

    kind: str  # ENC_DEC or PREFIX_LM
    packing: bool  # the converter's `pack`: several examples may share a row
    inputs_length: int
    targets_length: int
    features: tuple[str, ...]  # the output feature names, as the seqio converter emits them
    loss_on_targets_only: bool = True  # PREFIX_LM only
    bos_id: int = 0

    @classmethod
    def for_converter(cls, converter: seqio.FeatureConverter, task_feature_lengths: Mapping[str, int]) -> RowConverter:
        """The NumPy equivalent of `converter(ds, task_feature_lengths)`, one batch at a time."""
        if set(task_feature_lengths) != {"inputs", "targets"}:
            raise ConfigError(
                f"task_feature_lengths has keys {sorted(task_feature_lengths)}; expected exactly 'inputs' and 'targets'"
            )
        inputs_length, targets_length = int(task_feature_lengths["inputs"]), int(task_feature_lengths["targets"])
        if inputs_length < 0 or targets_length < 1:
            raise ConfigError(f"task_feature_lengths {dict(task_feature_lengths)}: need inputs >= 0 and targets >= 1")
        name = type(converter).__name__
        if isinstance(converter, _UNSUPPORTED):
            raise ConfigError(f"{name} lays features out differently; RowConverter supports EncDec and PrefixLM")
        if getattr(converter, "_passthrough_features", None):
            raise ConfigError(f"{name} has pass-through features; RowConverter does not support them")
        if getattr(converter, "_use_custom_packing_ops", False):
            raise ConfigError(f"{name} uses seqio's custom packing ops; RowConverter reproduces the default packer")
        if isinstance(converter, seqio.EncDecFeatureConverter):
            kind, known, packing = ENC_DEC, _ENC_DEC_FEATURES, _ENC_DEC_PACKING
        elif isinstance(converter, seqio.PrefixLMFeatureConverter):
            kind, known, packing = PREFIX_LM, _PREFIX_LM_FEATURES, _LM_PACKING
        else:
            raise ConfigError(
                f"{name} is neither a seqio EncDecFeatureConverter nor a PrefixLMFeatureConverter; "
                "RowConverter cannot reproduce it"
            )
        model_features = tuple(converter.MODEL_FEATURES)
        unknown = [k for k in model_features if k not in known]
        if unknown:
            raise ConfigError(f"{name}.MODEL_FEATURES has {unknown}, which RowConverter does not produce")
        for k, spec in converter.MODEL_FEATURES.items():
            if getattr(spec, "rank", 1) != 1 or getattr(getattr(spec, "dtype", None), "name", "int32") != "int32":
                raise ConfigError(f"{name}.MODEL_FEATURES[{k!r}] is not a 1-D int32 feature")
        features = model_features + (packing if converter.pack else ())
        return cls(
            kind=kind,
            packing=bool(converter.pack),
            inputs_length=inputs_length,
            targets_length=targets_length,
            features=features,
            loss_on_targets_only=bool(getattr(converter, "loss_on_targets_only", True)),
            bos_id=int(getattr(converter, "bos_id", 0)),
        )

    # ----------------------------------------------------------------------------------- lengths

    @property
    def capacity(self) -> tuple[int, ...]:
        """Positions per row on each side: (encoder I, decoder T), or (decoder I + T,) for the LMs."""
        if self.kind == ENC_DEC:
            return (self.inputs_length, self.targets_length)
        return (self.inputs_length + self.targets_length,)

    @property
    def feature_lengths(self) -> dict[str, int]:
        """Each output feature's length, as the converter's `get_model_feature_lengths` gives it."""
        if self.kind == ENC_DEC:
            return {k: self.inputs_length if k.startswith("encoder_") else self.targets_length for k in self.features}
        return {k: self.inputs_length + self.targets_length for k in self.features}

    def example_lengths(self, example: Example) -> tuple[int, ...]:
        """Positions `example` takes on each side of a row (aligned with `capacity`); raises `DataError`
        when it could not be laid out at all (too long, empty targets, empty packed encoder inputs)."""
        inputs, targets = _split(example)
        n_in, n_tg = len(inputs), len(targets)
        self._check_example(n_in, n_tg)
        if self.kind == ENC_DEC:
            return (n_in, n_tg)
        return (n_in + n_tg,)

    def _check_example(self, n_in: int, n_tg: int, where: str = "") -> None:
        if n_in > self.inputs_length or n_tg > self.targets_length:
            raise DataError(
                f"example{where} has {n_in} inputs and {n_tg} targets tokens; the limits are "
                f"{self.inputs_length} and {self.targets_length} (nothing is truncated)"
            )
        if n_tg == 0:
            raise DataError(f"example{where} has empty targets; examples must end in EOS")
        if n_in == 0 and self.packing and self.kind == ENC_DEC:
            raise DataError(
                f"example{where} has empty inputs; a packed encoder-decoder row cannot hold it "
                "(seqio's packer would misalign its encoder and decoder segment ids)"
            )

    def fits(self, row: Sequence[Example], example: Example) -> bool:
        """Whether `example` can join `row` (a list of examples) without overflowing any side."""
        lengths = self.example_lengths(example)
        if not self.packing:
            return len(row) == 0
        used = [0] * len(lengths)
        for other in row:
            for side, n in enumerate(self.example_lengths(other)):
                used[side] += n
        return all(u + n <= c for u, n, c in zip(used, lengths, self.capacity))

    def pack(self, examples: Sequence[Example], num_rows: int) -> Packed:
        """Greedy, in order, never reordering: each example joins the current row if it fits there,
        else opens the next one; stops at the first example that fits nowhere once `num_rows` rows
        are open. Unpacked converters put one example per row. Returns only the rows used."""
        if num_rows < 1:
            raise ConfigError(f"num_rows={num_rows}; need at least 1")
        capacity = self.capacity
        rows: list[list[Example]] = []
        used = [0] * len(capacity)
        placed = 0
        for example in examples:
            lengths = self.example_lengths(example)
            if not rows or not self.packing or any(u + n > c for u, n, c in zip(used, lengths, capacity)):
                if len(rows) == num_rows:
                    break
                rows.append([])
                used = [0] * len(capacity)
            rows[-1].append(example)
            used = [u + n for u, n in zip(used, lengths)]
            placed += 1
        return Packed(rows, placed)

    # ------------------------------------------------------------------------------------- rows

    def rows(self, rows: Sequence[Sequence[Example]], num_rows: int | None = None) -> Batch:
        """The [B, L] int32 features of `rows` (B = `num_rows` if given: the missing rows are empty,
        i.e. all padding with zero loss weight; else B = len(rows)). Each row lists the examples it
        holds, in order; unpacked converters take at most one example per row."""
        batch_rows = len(rows) if num_rows is None else num_rows
        if len(rows) > batch_rows:
            raise ConfigError(f"{len(rows)} rows given for a batch of num_rows={num_rows}")
        inputs_list: list[Any] = []
        targets_list: list[Any] = []
        counts = np.zeros(batch_rows, np.int64)
        for r, row in enumerate(rows):
            if len(row) > 1 and not self.packing:
                raise DataError(f"row {r} holds {len(row)} examples; an unpacked converter takes one per row")
            counts[r] = len(row)
            for example in row:
                inputs, targets = _split(example)
                inputs_list.append(inputs)
                targets_list.append(targets)
        num_examples = len(inputs_list)
        n_in = np.fromiter(map(len, inputs_list), np.int64, num_examples)
        n_tg = np.fromiter(map(len, targets_list), np.int64, num_examples)
        row_of = np.repeat(np.arange(batch_rows), counts)
        first_of_row = np.cumsum(counts) - counts
        segment = np.arange(num_examples) - first_of_row[row_of] + 1  # 1-based, within its row

        bad = (n_in > self.inputs_length) | (n_tg > self.targets_length) | (n_tg == 0)
        if self.packing and self.kind == ENC_DEC:
            bad |= n_in == 0
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            self._check_example(int(n_in[k]), int(n_tg[k]), f" {k} (row {row_of[k]})")

        if self.kind == ENC_DEC:
            enc = self._lay_out(inputs_list, n_in, row_of, first_of_row, segment, self.inputs_length, "inputs")
            dec = self._lay_out(targets_list, n_tg, row_of, first_of_row, segment, self.targets_length, "targets")
            tokens, segment_ids, positions = dec
            out = {
                "encoder_input_tokens": enc[0],
                "decoder_target_tokens": tokens,
                "decoder_input_tokens": self._shift(tokens, segment_ids),
                "decoder_loss_weights": (segment_ids > 0).astype(np.int32),
            }
            if self.packing:
                out.update(
                    encoder_segment_ids=enc[1],
                    decoder_segment_ids=segment_ids,
                    encoder_positions=enc[2],
                    decoder_positions=positions,
                )
        else:
            both = [None] * (2 * num_examples)
            both[0::2] = inputs_list
            both[1::2] = targets_list
            length = self.inputs_length + self.targets_length
            tokens, segment_ids, positions, width = self._lay_out(
                both, n_in + n_tg, row_of, first_of_row, segment, length, "inputs + targets", n_in
            )
            real = segment_ids > 0
            loss = (real & (positions >= width)) if self.loss_on_targets_only else real
            out = {
                "decoder_target_tokens": tokens,
                "decoder_input_tokens": self._shift(tokens, segment_ids),
                "decoder_loss_weights": loss.astype(np.int32),
                # The inputs and the one position after them (there the first target is predicted).
                "decoder_causal_attention": (real & (positions <= width)).astype(np.int32),
            }
            if self.packing:
                out.update(decoder_segment_ids=segment_ids, decoder_positions=positions)
        return {k: out[k] for k in self.features}

    def _lay_out(self, arrays, lengths, row_of, first_of_row, segment, length, what, widths=None):
        """Scatters the examples' tokens into [B, length]; returns tokens, segment ids, positions (and
        each position's example inputs width when `widths` is given), all int32."""
        total = int(lengths.sum())
        batch_rows = len(first_of_row)
        shape = (batch_rows, length)
        tokens = np.zeros(batch_rows * length, np.int32)
        segment_ids = np.zeros(batch_rows * length, np.int32)
        positions = np.zeros(batch_rows * length, np.int32)
        width = np.zeros(batch_rows * length, np.int32) if widths is not None else None
        if total:
            start = np.cumsum(lengths) - lengths  # each example's first index in the flat stream
            offset = start - start[first_of_row[row_of]]  # each example's first position in its row
            ends = offset + lengths
            if (ends > length).any():
                k = int(np.flatnonzero(ends > length)[0])
                used = int(ends[row_of == row_of[k]].max())
                raise DataError(
                    f"row {row_of[k]} needs {used} {what} positions; it has {length} (nothing is truncated)"
                )
            if widths is not None or not lengths.all():  # an empty list is float64, which "same_kind" refuses
                arrays = [a for a in arrays if len(a)]
            flat = np.concatenate(arrays, dtype=np.int32, casting="same_kind")
            if flat.shape != (total,):
                raise DataError(f"examples' {what} must be 1-D token sequences")
            if not flat.all():
                k = int(np.searchsorted(np.cumsum(lengths), int(np.flatnonzero(flat == 0)[0]), side="right"))
                raise DataError(
                    f"example {k} (row {row_of[k]}) holds the pad id 0 in its {what}; seqio would cut or mask it"
                )
            first = np.repeat(start, lengths)
            within = np.arange(total) - first
            dest = np.repeat(row_of * length + offset, lengths) + within
            tokens[dest] = flat
            segment_ids[dest] = np.repeat(segment, lengths)
            positions[dest] = within
            if widths is not None:
                width[dest] = np.repeat(widths, lengths)
        result = (tokens.reshape(shape), segment_ids.reshape(shape), positions.reshape(shape))
        if widths is not None:
            result += (width.reshape(shape),)
        return result

    def _shift(self, targets: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        """seqio's `make_autoregressive_inputs`: targets shifted right, `bos_id` first; packed, also
        `bos_id` wherever the segment id changes (each segment's start and the first padding)."""
        shifted = np.empty_like(targets)
        shifted[:, 0] = self.bos_id
        shifted[:, 1:] = targets[:, :-1]
        if self.packing:
            previous = np.zeros_like(segment_ids)
            previous[:, 1:] = segment_ids[:, :-1]
            shifted[segment_ids != previous] = self.bos_id
        return shifted
