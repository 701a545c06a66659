"""Reading a local Hugging Face checkpoint directory (T5 / mT5, Llama / Mistral) as a lowres model.

Nothing is downloaded: the directory must hold `config.json`, safetensors weights and, for a run to
use its tokenizer as the run's vocabulary, the SentencePiece model (`spiece.model` or
`tokenizer.model`). `huggingface-cli download ORG/NAME --local-dir DIR` fetches one beforehand.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from lowres.errors import DataError
from lowres.interop import hf_files, hf_layout, hf_tokenizer
from lowres.models.architecture import ArchitectureConfig

_SENTINEL = re.compile(r"<extra_id_(\d+)>")


@dataclasses.dataclass(frozen=True)
class HFCheckpoint:
    """A checkpoint's lowres config and parameters (nested NumPy, as `nnx.to_pure_dict`) and its tokenizer."""

    directory: Path
    config: ArchitectureConfig
    params: dict[str, Any]
    sentencepiece: Path | None
    num_sentinels: int


def num_sentinels(directory: Path) -> int:
    """How many `<extra_id_N>` tokens the directory's tokenizer files declare (T5: 100; Llama: none)."""
    found: set[int] = set()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        path = directory / name
        if path.is_file():
            found.update(int(n) for n in _SENTINEL.findall(path.read_text(encoding="utf-8", errors="replace")))
    config_path = directory / "tokenizer_config.json"
    if not found and config_path.is_file():
        try:
            extra = json.loads(config_path.read_text(encoding="utf-8")).get("extra_ids", 0)
        except json.JSONDecodeError as error:
            raise DataError(f"{config_path} is not valid JSON ({error})") from error
        return int(extra or 0)
    return max(found) + 1 if found else 0


def read_hf_checkpoint(directory: str | Path) -> HFCheckpoint:
    """The checkpoint in `directory` as lowres parameters (`NotRepresentable` names what does not fit)."""
    directory = Path(directory)
    where = str(directory / hf_files.CONFIG_FILE)
    hf_config = hf_files.read_config(directory)
    weights = hf_files.read_weights(directory)
    config = hf_layout.lowres_config(hf_config, weights, where)
    params = hf_layout.from_hf_weights(config, weights, str(directory))
    return HFCheckpoint(directory, config, params, hf_tokenizer.sentencepiece_file(directory), num_sentinels(directory))
