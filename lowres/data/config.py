"""The run's data settings: what to train on, how examples are cut and batched, and with which seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import gin

from lowres.errors import ConfigError

DECODER_ATTENTION = ("prefix", "causal")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on and how it is cut: lengths are per example, `batch_size` is global."""

    source: str = "builtin"
    languages: Sequence[str] | None = None
    objective: str = "r_and_s"
    temperature_alpha: float = 0.3
    inputs_length: int = 128
    targets_length: int = 128
    batch_size: int = 16
    pack: bool = True
    # Per-task shuffle buffer (seqio's default is 1000). Each task fills its own before the first
    # batch, so small corpora with many tasks start much faster with a few hundred.
    shuffle_buffer_size: int = 1000
    seed: int = 0
    # Decoder-only models: "prefix" attends bidirectionally over each example's inputs (UL2's prefix
    # LM); "causal" trains a fully causal model on the same sequences, for comparison. Loss stays on
    # the targets in both. Encoder-decoder models ignore it.
    decoder_attention: str = "prefix"
    # Fraction of training examples drawn from translation tasks (source `builtin` only: its
    # English-aligned pairs, both directions, split over pairs by temperature like the languages).
    translation_rate: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.translation_rate < 1.0:
            raise ConfigError(
                f"DataConfig.translation_rate={self.translation_rate!r} must lie in [0, 1): it is the fraction of "
                "training examples drawn from translation tasks (0 = none)"
            )
        if self.translation_rate and self.source != "builtin":
            raise ConfigError(
                f"DataConfig.translation_rate applies to source='builtin' only, got source={self.source!r}; a declared "
                "corpus sets its share with CorpusSpec(pairs=..., translation_share=...)"
            )
        if self.decoder_attention not in DECODER_ATTENTION:
            raise ConfigError(
                f"DataConfig.decoder_attention={self.decoder_attention!r}; choose one of {', '.join(DECODER_ATTENTION)}"
            )
