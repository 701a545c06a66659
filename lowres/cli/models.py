"""`lowres models list`: the model presets with their sizes and training FLOPs per token."""

from __future__ import annotations

from lowres.cli import common


def add_parser(commands) -> None:
    model_commands = common.add_action_group(commands, "models", "model presets", "Model presets.")
    listing = model_commands.add_parser(
        "list", help="every preset with its size and training FLOPs per token",
        description="Print every model preset: parameters, layers, widths and training FLOPs per token "
        "(MaxText's convention; encoder-decoders at 512+512 tokens, decoders at 1024).",
    )
    listing.add_argument("--vocab_size", type=int, default=32128, help="vocabulary size to count with")


def list_presets(args) -> int:
    from lowres.models.flops import model_summary_rows

    rows = model_summary_rows(vocab_size=args.vocab_size)
    print(f"vocabulary {args.vocab_size:,}")
    print("| preset | architecture | params | layers | d_model | heads | kv heads | d_ff | train GFLOP/token |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['architecture']} | {r['params'] / 1e6:,.1f}M | {r['layers']} | {r['d_model']} | "
              f"{r['heads']} | {r['kv_heads']} | {r['d_ff']} | {r['flops_per_token'] / 1e9:.3f} |")
    return 0


def run(args) -> int:
    return {"list": list_presets}[args.models_command](args)
