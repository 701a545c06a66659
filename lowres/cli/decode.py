"""`lowres translate` and `lowres generate`: decode with a trained model."""

from __future__ import annotations

from pathlib import Path

from lowres.cli import common


def add_parser(commands) -> None:
    translate = commands.add_parser(
        "translate", help="translate a text file line by line with a trained model",
        description="Translate FILE line by line (one sentence per line) into --output, in input order. "
        "Rerunning after an interruption continues after the last complete output line.",
    )
    translate.add_argument("--model_dir", required=True, metavar="DIR")
    translate.add_argument("--src", required=True, metavar="CODE", help="source language (e.g. eng_Latn)")
    translate.add_argument("--tgt", required=True, metavar="CODE", help="target language (e.g. pan_Guru)")
    translate.add_argument("--input", required=True, metavar="FILE")
    translate.add_argument("--output", required=True, metavar="FILE")
    common.add_decode_options(translate, beam=1)

    generate = commands.add_parser(
        "generate", help="generate text from prompts with a trained model",
        description="Continue each --prompt in a UL2 mode (the inputs are [mode token] + prompt).",
    )
    generate.add_argument("--model_dir", required=True, metavar="DIR")
    generate.add_argument("--prompt", action="append", required=True, help="prompt text (repeatable)")
    generate.add_argument("--mode", default="S2S", choices=("S2S", "NLG", "NLU", "none"),
                          help="mode token prepended to the prompt (default S2S)")
    generate.add_argument("--method", default="greedy", choices=("greedy", "sample", "beam", "contrastive"))
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top_k", type=int, default=0)
    generate.add_argument("--top_p", type=float, default=1.0)
    generate.add_argument("--penalty_alpha", type=float, default=0.6, help="contrastive degeneration penalty")
    generate.add_argument("--seed", type=int, default=0)
    common.add_decode_options(generate, beam=4)  # --beam applies to --method=beam


def _load_generator(args, method: str, **options):
    """The trained model of --model_dir at --step and a Generator over it."""
    from lowres.checkpoints.trained_model import load_trained_model
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator

    model = load_trained_model(args.model_dir, args.step)  # one clear error when DIR holds no run
    max_length = args.max_length or model.info.targets_length
    config = DecodeConfig(method=method, max_length=max_length, beam_size=args.beam, **options)
    return model, Generator(model, config, batch_size=args.batch_size)


def translate(args) -> int:
    from lowres.data.languages import normalize_language
    from lowres.inference.translate import translate_file

    with common.data_errors():
        normalize_language(args.src)
        tgt = normalize_language(args.tgt)
    model, generator = _load_generator(args, "beam" if args.beam > 1 else "greedy")
    stats = translate_file(generator, model.vocabulary, Path(args.input), Path(args.output), tgt,
                           model.info.inputs_length, progress=not args.no_progress)
    resumed = f" (resumed after line {stats['resumed_at']})" if stats["resumed_at"] else ""
    print(f"translated {stats['translated']} of {stats['lines']} lines{resumed} at "
          f"{stats['sentences_per_sec']:.1f} sentences/s into {args.output}")
    return 0


def generate(args) -> int:
    from lowres.inference.generate import mode_inputs

    model, generator = _load_generator(
        args, args.method, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        penalty_alpha=args.penalty_alpha, seed=args.seed,
    )
    vocabulary, mode = model.vocabulary, None if args.mode == "none" else f"[{args.mode}]"
    inputs = [mode_inputs(vocabulary, p, mode, model.info.inputs_length) for p in args.prompt]
    for prompt, ids in zip(args.prompt, generator.generate_all(inputs)):
        print(f"{prompt}\t{vocabulary.decode(ids)}")
    return 0


def run(args) -> int:
    return {"translate": translate, "generate": generate}[args.command](args)
