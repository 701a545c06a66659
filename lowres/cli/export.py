"""`lowres export hf`: a trained run as a Hugging Face `transformers` model directory."""

from __future__ import annotations

from pathlib import Path

from lowres.cli.common import add_action_group, check_writable


def add_parser(commands) -> None:
    actions = add_action_group(
        commands, "export", help="export a trained model (Hugging Face transformers)",
        description="Write a trained run in another framework's format.",
    )  # fmt: skip
    hf = actions.add_parser(
        "hf", help="a directory transformers loads with from_pretrained",
        description="Write config.json, generation_config.json, safetensors weights, the tokenizer and a model card: "
        "an encoder-decoder as T5ForConditionalGeneration, a decoder-only model as LlamaForCausalLM. Settings HF "
        "cannot represent (Post-LN, Mix-LN, LayerNorm Scaling) are refused.",
    )
    hf.add_argument("--model_dir", required=True, metavar="DIR", help="the run directory")
    hf.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    hf.add_argument("--output", required=True, metavar="OUT", help="the directory to write (replaced whole)")
    hf.add_argument("--eval", default=None, metavar="FILE.json",
                    help="a `lowres eval --output` whose table goes into the model card (default: DIR/eval.json)")
    hf.add_argument("--causal_approximation", action="store_true",
                    help="export a prefix-LM decoder as a causal LM (HF attends causally over prompts)")
    hf.add_argument("--max_shard_mb", type=float, default=5120,
                    help="split weights into safetensors shards of at most this size (default: 5120)")


def run(args) -> int:
    from lowres.checkpoints.trained_model import load_trained_model
    from lowres.errors import ConfigError
    from lowres.interop.hf_export import ExportOptions, check_exportable, export_hf
    from lowres.run_dir import require_run_dir

    require_run_dir(args.model_dir)
    if args.max_shard_mb <= 0:
        raise ConfigError(f"--max_shard_mb={args.max_shard_mb}: give a positive size in MB")
    output = Path(args.output)
    check_writable(output.parent, "--output")
    options = ExportOptions(causal_approximation=args.causal_approximation,
                            eval_report=Path(args.eval) if args.eval else None,
                            max_shard_bytes=int(args.max_shard_mb * 1024 * 1024))  # fmt: skip
    model = load_trained_model(args.model_dir, args.step)
    for note in check_exportable(model, options):
        print(f"approximation: {note}")
    export_hf(model, output, options)
    print(f"exported {args.model_dir} step {model.step} to {output} (load it with transformers' from_pretrained)")
    return 0
