"""The run directory: what `lowres train` writes into --model_dir and every other command reads.

    DIR/lowres.json        RunInfo: the model config, vocabulary file and data settings of the run
    DIR/config.gin         the operative gin config
    DIR/metrics.jsonl      one JSON record per logged step or evaluation
    DIR/tensorboard/       the same metrics for TensorBoard
    DIR/checkpoints/<step> Orbax checkpoints
    DIR/plots/*.png        loss curves, schedules, held-out scores
    DIR/vocab/             the vocabulary (SentencePiece model or byte vocabulary)

This module knows file names and the lowres.json schema only: it imports neither JAX nor TensorFlow,
so commands that only read a run start fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lowres.errors import DataError, MissingFileError
from lowres.files import read_json, write_json

RUN_FILE = "lowres.json"
CONFIG_FILE = "config.gin"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
PLOTS_DIR = "plots"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What evaluation, decoding and export need to rebuild a trained model and feed it as in training."""

    model: Mapping[str, Any]  # models.architecture.config_to_dict of the resolved model config
    vocabulary: str  # path of the vocabulary file, relative to the run directory
    num_sentinels: int
    inputs_length: int
    targets_length: int
    objective: str = "r_and_s"
    languages: tuple[str, ...] = ()
    data_source: str = "builtin"
    # Runs recorded before these keys existed trained with prefix attention and mode tokens.
    decoder_attention: str = "prefix"
    mode_tokens: bool = True
    translation_rate: float = 0.0

    @property
    def architecture(self) -> str:
        return str(self.model.get("architecture", "encoder_decoder"))

    @property
    def scoring_mode_token(self) -> str | None:
        """The mode token text is scored after (UL2's [S2S]), or None for runs trained without them."""
        return "[S2S]" if self.mode_tokens else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"], data["languages"] = dict(self.model), list(self.languages)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = RUN_FILE) -> RunInfo:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.name not in data]  # fmt: skip
        if not isinstance(data, Mapping) or missing:
            raise DataError(f"{where} lacks {', '.join(missing) or 'its fields'}; it was not written by `lowres train`")
        fields = {k: v for k, v in data.items() if k in names}
        fields["languages"] = tuple(fields.get("languages") or ())
        return cls(**fields)


def run_file(model_dir: str | Path) -> Path:
    return Path(model_dir) / RUN_FILE


def is_run_dir(model_dir: str | Path) -> bool:
    return run_file(model_dir).is_file()


def require_run_dir(model_dir: str | Path, option: str = "--model_dir", how: str | None = None) -> Path:
    """`model_dir` as a Path; one clear error when it holds no trained run (`how`: how to make one)."""
    if not is_run_dir(model_dir):
        how = how or f"`lowres train --model_dir={model_dir}`"
        raise MissingFileError(
            f"{option}={model_dir} holds no trained model (no {RUN_FILE}): it is not a lowres model directory; "
            f"train one with {how} first"
        )
    return Path(model_dir)


def read_run_info(model_dir: str | Path, option: str = "--model_dir") -> RunInfo:
    path = run_file(require_run_dir(model_dir, option))
    return RunInfo.from_dict(read_json(path, "the run's lowres.json"), where=str(path))


def write_run_info(model_dir: str | Path, info: RunInfo) -> Path:
    return write_json(run_file(model_dir), info.to_dict())


def read_metrics(model_dir: str | Path) -> list[dict]:
    path = Path(model_dir) / METRICS_FILE
    if not path.is_file():
        raise MissingFileError(f"{path} not found: {model_dir} holds no training metrics (run `lowres train` first)")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not JSON ({error.msg})") from error
    return records
