"""`lowres bench`: training throughput and MFU, data pipeline, checkpoints, scale, decode."""

from __future__ import annotations

import argparse
import json

from lowres.errors import UsageError


def add_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="benchmarks: training throughput and MFU, data pipeline, checkpoints, scale",
        description="Run a benchmark case and print its table; --json adds one JSON object as the last line. "
        "Cases: train (--shape maxtext-ref | t5-ref | quickstart), data (pipeline tokens/s per core vs the "
        "trainer), checkpoint (--shape PRESET: Orbax save/restore vs file copy), scale (largest decoder preset "
        "that trains here), decode, compare (--peer=maxtext: lowres and MaxText side by side, interleaved), all "
        "(every case but compare, each in its own process).",
    )
    bench.add_argument("case", choices=("train", "data", "checkpoint", "scale", "decode", "compare", "all"))
    bench.add_argument("--shape", default=None, metavar="NAME",
                       help="train: maxtext-ref (default), t5-ref, quickstart, decoder-125m, decoder-350m, decoder-1b; checkpoint: a decoder preset "
                       "(default gpt2-small); scale: comma-separated presets")
    bench.add_argument("--steps", type=int, default=None, metavar="N",
                       help="train: timed steps after compile (default 20); data: timed batches after 250 warm-up "
                       "batches (200); checkpoint: repeats (3); scale: timed steps (1); decode: repeats (3)")
    bench.add_argument("--objective", default=None, metavar="NAME",
                       help="data: measure this objective's pipeline only, ul2 or r_and_s (default: both)")
    bench.add_argument("--architecture", default=None, metavar="NAME",
                       help="data: measure this architecture's pipeline only, encoder_decoder or decoder_only "
                       "(default: both)")
    bench.add_argument("--parts", default=None, metavar="A,B",
                       help="data: steady, flores, languages, resume (comma-separated; default all)")
    bench.add_argument("--executors", default=None, metavar="A,B",
                       help="data: indexed, seqio (comma-separated; default both, side by side)")
    bench.add_argument("--flores_dir", default=None, metavar="DIR",
                       help="data: FLORES-200's dev/ directory (default ../shared/data/flores200/dev)")
    bench.add_argument("--plot", default=None, metavar="FILE.png",
                       help="data: where the languages curve goes (default beside the bench's work files)")
    bench.add_argument("--synthetic", action="store_true", help="train on random batches instead of the UL2 mixture")
    bench.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                       help="train: compute dtype (parameters and optimizer state stay float32; logits, softmax and "
                       "loss in float32); MFU is taken against this dtype's peak")
    bench.add_argument("--attention", default=None, metavar="NAME",
                       help="train: attention implementation (plain | dot_product | cudnn), see ModelConfig.attention")
    bench.add_argument("--peer", default=None, metavar="NAME",
                       help="compare: the framework run side by side (maxtext)")
    bench.add_argument("--peer_python", default=None, metavar="PATH",
                       help="compare: the peer's interpreter (default: $LOWRES_MAXTEXT_PYTHON)")
    bench.add_argument("--rounds", type=int, default=None, metavar="N",
                       help="compare: interleaved rounds of every case (default 2)")
    bench.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    bench.add_argument("--output", default=None, metavar="FILE.json", help="also write the JSON result here")
    bench.add_argument("--peak_size", type=int, default=2048, metavar="N",
                       help="side of the float32 matmul that measures this machine's peak (CPU; default 2048)")
    bench.add_argument("--trainer_tokens_per_sec", type=float, default=None, help=argparse.SUPPRESS)
    bench.add_argument("--time_limit_s", type=float, default=None, metavar="S",
                       help="scale: seconds for all candidates together (default 600); all: seconds for the "
                       "whole suite, shared among the cases in fixed proportions (default 600)")


def run(args) -> int:
    from lowres.bench import report, suite

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    train_only = {"--dtype": args.dtype, "--attention": args.attention}
    given = [name for name, value in train_only.items() if value]
    if args.case not in ("train",) and given:
        raise UsageError(f"{', '.join(given)} apply to `lowres bench train` only, not {args.case}")
    data_only = {"--objective": args.objective, "--architecture": args.architecture, "--parts": args.parts,
                 "--executors": args.executors, "--flores_dir": args.flores_dir, "--plot": args.plot}
    given = [name for name, value in data_only.items() if value]
    if args.case != "data" and given:
        raise UsageError(f"{', '.join(given)} apply to `lowres bench data` only, not {args.case}")
    compare_only = {"--peer": args.peer, "--peer_python": args.peer_python, "--rounds": args.rounds}
    given = [name for name, value in compare_only.items() if value is not None]
    if args.case != "compare" and given:
        raise UsageError(f"{', '.join(given)} apply to `lowres bench compare` only, not {args.case}")
    if args.case == "compare" and (args.shape or args.synthetic):
        raise UsageError("bench compare runs fixed cases (maxtext-ref and t5-ref, synthetic and real); "
                         "drop --shape and --synthetic, or use `lowres bench train` for one shape")
    options = suite.Options(args.shape, args.steps, args.synthetic, args.trainer_tokens_per_sec, args.peak_size,
                            args.time_limit_s, args.objective, args.architecture, _names(args.parts),
                            _names(args.executors), args.flores_dir, args.plot, args.dtype, args.attention,
                            args.peer, args.peer_python, args.rounds)
    record, table = suite.run_case(args.case, options, log=lambda line: print(line, flush=True))
    print(table)
    if args.output:
        report.write_json(args.output, record)
        print(f"wrote {args.output}")
    if args.json:
        print(json.dumps(record))
    return 0


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(name.strip() for name in text.split(",") if name.strip()) if text else None
