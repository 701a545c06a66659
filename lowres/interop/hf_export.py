"""Exporting a trained lowres model as a Hugging Face directory that `transformers` loads with
`from_pretrained(DIR)` and no other code: config.json, generation_config.json, safetensors weights,
the tokenizer, a model card (README.md) and `lowres_export.json` (where it came from).

The directory appears whole or not at all (written beside it, then renamed into place), so a crash
mid-export leaves the previous export as it was.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import jax
import numpy as np

from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError
from lowres.files import atomic_directory, write_atomic, write_json
from lowres.interop import hf_files, hf_layout, hf_tokenizer
from lowres.interop.hf_layout import NotRepresentable
from lowres.models.config import DecoderOnlyConfig

EXPORT_RECORD = "lowres_export.json"


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """`causal_approximation`: export a prefix-LM decoder (trained with bidirectional attention over its
    inputs) as a causal Llama anyway; HF then attends causally over prompts, so its logits there differ
    from lowres's. `eval_report`: a `lowres eval --output` JSON whose table (the .md beside it) goes into
    the model card. `max_shard_bytes`: weights above this size are split into shards."""

    causal_approximation: bool = False
    eval_report: Path | None = None
    max_shard_bytes: int = hf_files.DEFAULT_MAX_SHARD_BYTES


def check_exportable(model: TrainedModel, options: ExportOptions) -> list[str]:
    """The approximations an export of `model` makes (empty for an exact one); `NotRepresentable` if
    HF cannot hold the model at all, or only approximately and the options do not allow it."""
    hf_layout.hf_config(model.config, 1)  # refuses Post-LN, Mix-LN and LayerNorm Scaling
    approximations = []
    if isinstance(model.config, DecoderOnlyConfig) and model.info.decoder_attention == "prefix":
        if not options.causal_approximation:
            raise NotRepresentable(
                "this decoder-only run trained as a prefix LM (DataConfig.decoder_attention='prefix'): its inputs "
                "attend bidirectionally, which LlamaForCausalLM cannot; pass --causal_approximation to export it "
                "anyway (HF then attends causally over prompts), or train with DataConfig.decoder_attention='causal'"
            )
        approximations.append("prefix-LM decoder exported as a causal LM: prompts are attended causally")
    return approximations


def host_params(params):
    """Parameters as host NumPy arrays, bfloat16 widened to float32 (safetensors' NumPy writer and most
    HF consumers expect IEEE types)."""
    def to_host(x):
        array = np.asarray(jax.device_get(x))
        return array.astype(np.float32) if array.dtype.name == "bfloat16" else array

    return jax.tree.map(to_host, params)


def export_hf(model: TrainedModel, output: str | Path, options: ExportOptions = ExportOptions()) -> Path:
    """Writes `model` to `output` as an HF model directory; returns `output`."""
    approximations = check_exportable(model, options)
    output = Path(output)
    if model.model_dir is not None and output.resolve() == Path(model.model_dir).resolve():
        raise ConfigError(f"--output={output} is the run directory itself; export to a directory of its own")
    info, config = model.info, model.config
    decoder_only = isinstance(config, DecoderOnlyConfig)
    eos_id = int(model.vocabulary.eos_id)
    hf_config = hf_layout.hf_config(config, info.inputs_length + info.targets_length, eos_id)
    weights = hf_layout.to_hf_weights(config, host_params(model.params))
    generation = {"pad_token_id": hf_layout.PAD_ID, "eos_token_id": eos_id}
    generation.update({"bos_token_id": hf_layout.PAD_ID} if decoder_only
                      else {"decoder_start_token_id": hf_layout.PAD_ID})  # fmt: skip
    eval_table = _eval_table(options.eval_report, model.model_dir)
    with atomic_directory(output) as scratch:
        write_json(scratch / hf_files.CONFIG_FILE, hf_config)
        write_json(scratch / "generation_config.json", generation)
        hf_files.write_weights(scratch, weights, options.max_shard_bytes)
        hf_tokenizer.write_tokenizer(model.vocabulary, scratch, decoder_only)
        write_atomic(scratch / "README.md", model_card(model, hf_config, approximations, eval_table))
        write_json(scratch / EXPORT_RECORD, {
            "model_dir": str(model.model_dir) if model.model_dir else None, "step": model.step,
            "architecture": hf_config["architectures"][0], "approximations": approximations,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip
    return output


def _eval_table(eval_report: Path | None, model_dir: Path | None) -> str | None:
    """The markdown table `lowres eval` wrote beside its JSON (FILE.md), if there is one."""
    candidates = [Path(eval_report)] if eval_report else []
    if model_dir is not None:
        candidates.append(Path(model_dir) / "eval.json")
    for report in candidates:
        table = report.with_suffix(".md")
        if table.is_file():
            return table.read_text(encoding="utf-8").strip()
        if eval_report and report == Path(eval_report):
            raise ConfigError(f"--eval={eval_report}: no {table.name} beside it; pass the --output of `lowres eval`")
    return None


def model_card(model: TrainedModel, hf_config: dict, approximations: list[str], eval_table: str | None) -> str:
    """README.md of the export: what the model is, what it was trained on, how to load it."""
    info, config = model.info, model.config
    codes = sorted({lang.split("_")[0] for lang in info.languages})
    architecture = hf_config["architectures"][0]
    family = "a decoder-only (Llama layout)" if isinstance(config, DecoderOnlyConfig) else "an encoder-decoder (T5.1.1)"
    lines = ["---", "library_name: transformers", "tags:", "- lowres"]
    if codes:
        lines += ["language:"] + [f"- {code}" for code in codes]
    lines += ["---", "", f"# {Path(model.model_dir).name if model.model_dir else 'lowres model'}", ""]
    lines += [
        f"{family[0].upper()}{family[1:]} language model trained with lowres and exported as `{architecture}`.",
        "",
        "| | |", "|---|---|",
        f"| parameters | {config.num_params():,} |",
        f"| steps | {model.step:,} |",
        f"| data | `{info.data_source}` |",
        f"| objective | `{info.objective}`"
        + (f", translation rate {info.translation_rate}" if info.translation_rate else "") + " |",
        f"| sequence lengths | inputs {info.inputs_length}, targets {info.targets_length} |",
        f"| vocabulary | {model.vocabulary.vocab_size:,} ids ({type(model.vocabulary).__name__}), "
        f"{info.num_sentinels} sentinels |",
        f"| languages | {len(info.languages)}: {', '.join(info.languages[:40])}"
        + (" ..." if len(info.languages) > 40 else "") + " |",
        "",
    ]  # fmt: skip
    if info.mode_tokens:
        lines += ["Trained with UL2 mode tokens: start an input with `[NLU]`, `[NLG]` or `[S2S]` as in training; "
                  "`<2xxx_Scrp>` tags ask for output in a language.", ""]  # fmt: skip
    if approximations:
        lines += ["**Approximations in this export:** " + "; ".join(approximations) + ".", ""]
    loader = "AutoModelForCausalLM" if isinstance(config, DecoderOnlyConfig) else "AutoModelForSeq2SeqLM"
    lines += ["## Use", "", "```python", f"from transformers import AutoTokenizer, {loader}",
              "tokenizer = AutoTokenizer.from_pretrained(PATH)", f"model = {loader}.from_pretrained(PATH)",
              "```", ""]  # fmt: skip
    lines += ["## Evaluation", ""]
    lines += [eval_table, ""] if eval_table else ["No `lowres eval` report was given at export time.", ""]
    return "\n".join(lines)
