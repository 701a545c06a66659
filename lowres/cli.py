"""The `lowres` command line: train, eval and data.

Errors a user can fix (a missing file, an unknown binding or language, an unwritable directory)
print one line naming the problem and exit with code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

GIN_CONFIG_DIR = Path(__file__).resolve().parents[1] / "gin_configs"


class UsageError(Exception):
    """A problem with the command line or its inputs; reported without a traceback."""


# ---------------------------------------------------------------------------------------------
# Argument parsing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowres",
        description="Pretrain and evaluate language models for low-resource languages (JAX, SeqIO, Flax, Orbax).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train (or resume) a model from gin configs",
        description="Train a model. Writes DIR/config.gin, DIR/metrics.jsonl, DIR/lowres.json and Orbax "
        "checkpoints under DIR/checkpoints/; resumes from the latest checkpoint when DIR holds one. "
        "Override any gin binding with --gin.NAME=VALUE, e.g. --gin.TrainConfig.num_steps=50.",
    )
    train.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                       help="gin config file (repeatable); names are also looked up in gin_configs/")
    train.add_argument("--model_dir", required=True, metavar="DIR", help="where the run lives")
    train.add_argument("--no_progress", action="store_true", help="no progress bar (log lines only)")
    train.add_argument("--distributed", action="store_true",
                       help="multi-host run: call jax.distributed.initialize() (auto-detected on TPU pods and "
                       "SLURM; elsewhere give the three options below)")
    train.add_argument("--coordinator_address", default=None, metavar="HOST:PORT")
    train.add_argument("--num_processes", type=int, default=None)
    train.add_argument("--process_id", type=int, default=None)

    evaluate = commands.add_parser(
        "eval",
        help="per-language bits per byte of a trained model",
        description="Evaluate a trained model: per-language bits per byte (UTF-8, tokenizer-independent), "
        "with a unigram byte model as a baseline.",
    )
    evaluate.add_argument("--model_dir", required=True, action="append", metavar="DIR",
                          help="a trained run; repeat to compare several side by side")
    evaluate.add_argument("--translate", default=None, metavar="SRC-TGT,...",
                          help="also translate these directions of --data=flores:DIR and report chrF++, BLEU and "
                          "length ratio (sacrebleu), e.g. eng_Latn-pan_Guru,pan_Guru-eng_Latn")
    evaluate.add_argument("--translate_limit", type=int, default=None, metavar="N",
                          help="translate only the first N sentences of each direction")
    evaluate.add_argument("--beam", type=int, default=1, help="beam size for --translate (1 = greedy)")
    evaluate.add_argument("--data", default="builtin", metavar="SOURCE",
                          help="builtin | flores:DIR (DIR/<code>.<split>) | text:FILE (with --lang) | "
                          "task:NAME[:split] (a seqio task's raw text; the run's own tasks are registered)")
    evaluate.add_argument("--output", required=True, metavar="FILE.json", help="where to write the results")
    evaluate.add_argument("--langs", default=None, metavar="a,b,...", help="languages to evaluate (default: all)")
    evaluate.add_argument("--lang", default=None, metavar="CODE", help="language of a text:FILE source")
    evaluate.add_argument("--split", default=None, metavar="NAME",
                          help="split to evaluate (builtin: validation; flores: dev)")
    evaluate.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    evaluate.add_argument("--batch_size", type=int, default=32)

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
    _add_decode_options(translate, beam=1)

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
    _add_decode_options(generate, beam=4)  # --beam applies to --method=beam

    _add_translationese_parser(commands)

    plot = commands.add_parser(
        "plot", help="redraw a run's PNG plots",
        description="Redraw DIR/plots/*.png from DIR/metrics.jsonl: loss curves, the learning-rate schedule and "
        "mixing rates (when logged).",
    )
    plot.add_argument("model_dir", metavar="DIR")

    models = commands.add_parser("models", help="model presets", description="Model presets.")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    model_commands.required = True
    listing = model_commands.add_parser(
        "list", help="every preset with its size and training FLOPs per token",
        description="Print every model preset: parameters, layers, widths and training FLOPs per token "
        "(MaxText's convention; encoder-decoders at 512+512 tokens, decoders at 1024).",
    )
    listing.add_argument("--vocab_size", type=int, default=32128, help="vocabulary size to count with")

    data = commands.add_parser("data", help="inspect data sources", description="Inspect data sources.")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_commands.required = True
    describe = data_commands.add_parser(
        "describe", help="languages, documents, sizes, mixing rates and epochs of a source or mixture",
        description="Print languages, documents, bytes, tokens (with --model_dir's vocabulary), mixing rates and "
        "expected epochs per language for --tokens training tokens. SOURCE_OR_MIXTURE: builtin, flores:DIR, "
        "text:GLOB, jsonl:GLOB, udhr:GLOB, a corpus declared in --gin_file, or <corpus>.<objective>.",
    )
    describe.add_argument("source", nargs="?", default="builtin", metavar="SOURCE_OR_MIXTURE")
    describe.add_argument("--tokens", type=float, default=None, metavar="N",
                          help="training tokens, for expected epochs per language")
    describe.add_argument("--model_dir", default=None, metavar="DIR", help="a trained run whose vocabulary counts tokens")
    describe.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                          help="gin file declaring corpora (declared_corpora.specs); repeatable")
    describe.add_argument("--lang", default=None, metavar="CODE", help="language of a single-language text:FILE")
    sample = data_commands.add_parser(
        "sample", help="decoded examples of each denoiser of an objective",
        description="Register the builtin tasks of an objective and print decoded examples of a task or of every "
        "task of a mixture: the mode token, the inputs with sentinels, the targets. NAME is an objective preset "
        "(ul2, t5_span_corruption, ...), a mixture builtin.<objective> or a task builtin.<lang>.<denoiser>.",
    )
    sample.add_argument("name", nargs="?", default=None, metavar="NAME", help="task, mixture or objective (default: --objective)")
    sample.add_argument("--model_dir", default=None, metavar="DIR",
                        help="a trained run whose vocabulary is used (default: a vocabulary trained once on the builtin "
                        "corpus and cached)")
    sample.add_argument("--objective", default="ul2", help="objective preset (ul2, ul2r, r_and_s, ...)")
    sample.add_argument("--lang", default="eng", metavar="CODE", help="language of the builtin corpus")
    sample.add_argument("-n", type=int, default=3, help="examples per denoiser")
    sample.add_argument("--inputs_length", type=int, default=None, help="default: the run's, else 128")
    sample.add_argument("--targets_length", type=int, default=None, help="default: the run's, else 128")

    vocab = commands.add_parser("vocab", help="inspect vocabularies", description="Inspect vocabularies.")
    vocab_commands = vocab.add_subparsers(dest="vocab_command", metavar="ACTION")
    vocab_commands.required = True
    vocab_report = vocab_commands.add_parser(
        "report", help="fertility, byte-fallback share and unknown rate per language",
        description="Encode a data source with a vocabulary and print, per language, tokens per word and per "
        "character, the share of byte-fallback tokens and the unknown rate; --output also saves the JSON and "
        "a PNG bar chart of fertility beside it.",
    )
    vocab_source = vocab_report.add_mutually_exclusive_group(required=True)
    vocab_source.add_argument("--model_dir", default=None, metavar="DIR", help="a run directory (its vocabulary)")
    vocab_source.add_argument("--vocab", default=None, metavar="FILE",
                              help="a SentencePiece .model or a byte-vocabulary .json file")
    vocab_report.add_argument("--num_sentinels", type=int, default=100, help="extra ids of a --vocab file")
    vocab_report.add_argument("--data", default="builtin", metavar="SOURCE",
                              help="builtin | flores:DIR (DIR/<code>.<split>) | text:FILE (with --lang)")
    vocab_report.add_argument("--langs", default=None, metavar="a,b,...", help="languages (default: all)")
    vocab_report.add_argument("--lang", default=None, metavar="CODE", help="language of a text:FILE source")
    vocab_report.add_argument("--split", default=None, metavar="NAME",
                              help="split to read (builtin: validation; flores: dev)")
    vocab_report.add_argument("--output", default=None, metavar="FILE.json",
                              help="write the report here and the chart to FILE.png")

    bench = commands.add_parser(
        "bench", help="benchmarks: training throughput and MFU, data pipeline, checkpoints, scale",
        description="Run a benchmark case and print its table; --json adds one JSON object as the last line. "
        "Cases: train (--shape maxtext-ref | t5-ref | quickstart), data (pipeline tokens/s per core vs the "
        "trainer), checkpoint (--shape PRESET: Orbax save/restore vs file copy), scale (largest decoder preset "
        "that trains here), decode, all (every case, each in its own process).",
    )
    bench.add_argument("case", choices=("train", "data", "checkpoint", "scale", "decode", "all"))
    bench.add_argument("--shape", default=None, metavar="NAME",
                       help="train: maxtext-ref (default), t5-ref, quickstart; checkpoint: a decoder preset "
                       "(default gpt2-small); scale: comma-separated presets")
    bench.add_argument("--steps", type=int, default=None, metavar="N",
                       help="train: timed steps after compile (default 20); data: timed batches after 250 warm-up "
                       "batches (200); checkpoint: repeats (3); scale: timed steps (1); decode: repeats (3)")
    bench.add_argument("--objective", default=None, metavar="NAME",
                       help="data: measure this objective's pipeline only, ul2 or r_and_s (default: both)")
    bench.add_argument("--architecture", default=None, metavar="NAME",
                       help="data: measure this architecture's pipeline only, encoder_decoder or decoder_only "
                       "(default: both)")
    bench.add_argument("--synthetic", action="store_true", help="train on random batches instead of the UL2 mixture")
    bench.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    bench.add_argument("--output", default=None, metavar="FILE.json", help="also write the JSON result here")
    bench.add_argument("--peak_size", type=int, default=2048, metavar="N",
                       help="side of the float32 matmul that measures this machine's peak (CPU; default 2048)")
    bench.add_argument("--trainer_tokens_per_sec", type=float, default=None, help=argparse.SUPPRESS)
    bench.add_argument("--time_limit_s", type=float, default=None, metavar="S",
                       help="scale: seconds for all candidates together (default 600); all: seconds for the "
                       "whole suite, shared among the cases in fixed proportions (default 600)")
    return parser


def _add_decode_options(parser: argparse.ArgumentParser, beam: int) -> None:
    parser.add_argument("--beam", type=int, default=beam, help=f"beam size (1 = greedy; default {beam})")
    parser.add_argument("--max_length", type=int, default=None, help="most output tokens (default: the run's targets length)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def _split_gin_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--gin.NAME=VALUE` arguments (gin bindings) from the rest."""
    rest, bindings = [], []
    for arg in argv:
        if arg.startswith("--gin."):
            name, sep, value = arg[len("--gin."):].partition("=")
            if not sep or not name:
                raise UsageError(f"malformed binding {arg!r}; write --gin.NAME=VALUE, e.g. --gin.TrainConfig.num_steps=10")
            bindings.append(f"{name} = {value}")
        else:
            rest.append(arg)
    return rest, bindings


def _resolve_gin_file(name: str) -> str:
    for candidate in (Path(name), GIN_CONFIG_DIR / name, GIN_CONFIG_DIR / f"{name}.gin"):
        if candidate.is_file():
            return str(candidate)
    raise UsageError(f"gin file {name!r} not found (looked in the current directory and {GIN_CONFIG_DIR})")


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".lowres-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--model_dir={directory} is not writable ({error.strerror}); choose a directory you can write to") from error


def _parse_gin(files: Sequence[str], bindings: Sequence[str]) -> None:
    import gin

    import lowres.training.trainer  # noqa: F401  (registers the configurables gin binds)

    gin.add_config_file_search_path(str(GIN_CONFIG_DIR))  # `include "models/..."` inside gin files
    try:
        gin.parse_config_files_and_bindings([_resolve_gin_file(f) for f in files], bindings)
    except (ValueError, KeyError, SyntaxError) as error:
        raise UsageError(f"gin config: {error}".splitlines()[0]) from error


# ---------------------------------------------------------------------------------------------
# Commands


def _initialize_distributed(args) -> None:
    import jax

    jax.distributed.initialize(
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )


def _cmd_train(args, bindings) -> int:
    model_dir = Path(args.model_dir)
    _check_writable(model_dir)
    if args.distributed:
        _initialize_distributed(args)
    _parse_gin(args.gin_file, bindings)
    from lowres.training.trainer import train

    summary = train(model_dir, progress=not args.no_progress)
    history = summary["history"]
    if history:
        print(
            f"trained steps {summary['start_step']}..{summary['final_step']}: loss {history[0]['loss']:.4f} -> "
            f"{history[-1]['loss']:.4f}; checkpoint {summary['final_step']} in {model_dir / 'checkpoints'}"
        )
    else:
        print(f"nothing to do: {model_dir} already holds step {summary['final_step']}")
    return 0


def _cmd_eval(args) -> int:
    from lowres.evaluation import report

    for model_dir in args.model_dir:
        if not (Path(model_dir) / "lowres.json").is_file():
            raise UsageError(f"--model_dir={model_dir} holds no trained model (no lowres.json); run `lowres train` first")
    reports = report.run_eval(
        [Path(d) for d in args.model_dir], args.data, args.split, args.langs.split(",") if args.langs else None,
        args.lang, args.step, args.batch_size, args.translate, args.translate_limit, args.beam,
    )
    markdown, paths = report.write_outputs(reports, Path(args.output))
    print(markdown)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _load_generator(args, method: str, **options):
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator
    from lowres.training.trainer import load_params

    if not (Path(args.model_dir) / "lowres.json").is_file():
        raise UsageError(f"--model_dir={args.model_dir} holds no trained model (no lowres.json); run `lowres train` first")
    loaded = load_params(Path(args.model_dir), args.step)
    max_length = args.max_length or loaded["info"]["targets_length"]
    config = DecodeConfig(method=method, max_length=max_length, beam_size=args.beam, **options)
    return loaded, Generator(loaded, config, batch_size=args.batch_size)


def _cmd_translate(args) -> int:
    from lowres.data.languages import normalize_language
    from lowres.inference.translate import translate_file

    normalize_language(args.src)
    tgt = normalize_language(args.tgt)
    loaded, generator = _load_generator(args, "beam" if args.beam > 1 else "greedy")
    stats = translate_file(generator, loaded["vocabulary"], Path(args.input), Path(args.output), tgt,
                           loaded["info"]["inputs_length"], progress=not args.no_progress)
    resumed = f" (resumed after line {stats['resumed_at']})" if stats["resumed_at"] else ""
    print(f"translated {stats['translated']} of {stats['lines']} lines{resumed} at "
          f"{stats['sentences_per_sec']:.1f} sentences/s into {args.output}")
    return 0


def _cmd_generate(args) -> int:
    from lowres.inference.generate import mode_inputs

    loaded, generator = _load_generator(
        args, args.method, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        penalty_alpha=args.penalty_alpha, seed=args.seed,
    )
    vocabulary, mode = loaded["vocabulary"], None if args.mode == "none" else f"[{args.mode}]"
    inputs = [mode_inputs(vocabulary, p, mode, loaded["info"]["inputs_length"]) for p in args.prompt]
    for prompt, ids in zip(args.prompt, generator.generate_all(inputs)):
        print(f"{prompt}\t{vocabulary.decode(ids)}")
    return 0


def _add_translationese_parser(commands) -> None:
    """`lowres translationese build|score|filter`: synthetic corpora by MT, TinyLM scores, filtering."""
    group = commands.add_parser(
        "translationese", help="build, score and filter machine-translated corpora",
        description="Translationese: translate a monolingual source (build), score each document with a "
        "TinyLM (score), keep the most fluent part (filter). The output reads back as the data source "
        "jsonl:DIR/docs-*.jsonl with kind='translationese'.",
    )  # fmt: skip
    actions = group.add_subparsers(dest="translationese_command", metavar="ACTION")
    actions.required = True
    build = actions.add_parser(
        "build", help="translate a source into JSONL documents with provenance",
        description="Translate --source sentence by sentence into DIR/docs-<i>-of-<n>.jsonl (documents in "
        "source order, paragraphs kept) with a manifest. Rerunning resumes; shards run as separate processes.",
    )  # fmt: skip
    build.add_argument("--source", required=True, metavar="SOURCE",
                       help="builtin | flores:DIR | text:GLOB | jsonl:GLOB | udhr:GLOB")
    build.add_argument("--src", required=True, metavar="CODE", help="source language (e.g. eng_Latn)")
    build.add_argument("--tgt", required=True, metavar="CODE", help="target language (e.g. pan_Guru)")
    build.add_argument("--translator", required=True, metavar="SPEC",
                       help="lowres:MODEL_DIR | hf:MODEL_DIR (needs transformers + torch) | py:MODULE:ATTRIBUTE")
    build.add_argument("--output", required=True, metavar="DIR")
    build.add_argument("--split", default=None, help="source split (default: train, else the first)")
    build.add_argument("--layout", default="lines", choices=("lines", "paragraphs"),
                       help="text sources: a document per line, or per blank-line-separated block")
    build.add_argument("--shard_index", type=int, default=0)
    build.add_argument("--num_shards", type=int, default=1)
    build.add_argument("--batch_size", type=int, default=32, help="sentences per translation batch")
    build.add_argument("--chunk_documents", type=int, default=64, help="documents written together")
    build.add_argument("--max_sentence_chars", type=int, default=0, help="cut longer sentences at spaces (0: off)")
    build.add_argument("--max_documents", type=int, default=None, help="per shard, for quick runs")
    build.add_argument("--beam", type=int, default=5, help="beam size of model translators (1 = greedy)")
    build.add_argument("--max_length", type=int, default=None, help="most output tokens per sentence")
    build.add_argument("--no_progress", action="store_true")
    score = actions.add_parser(
        "score", help="TinyLM perplexity of every document",
        description="Write DIR/scores-<i>-of-<n>.jsonl beside each shard: the perplexity exp(mean NLL over "
        "BOS + document + EOS) under a trained decoder-only model (gin_configs/translationese/tinylm.gin).",
    )  # fmt: skip
    score.add_argument("--input", required=True, metavar="DIR", help="a `translationese build` output")
    score.add_argument("--model_dir", required=True, metavar="DIR", help="the trained TinyLM")
    score.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    score.add_argument("--batch_size", type=int, default=16)
    score.add_argument("--window", type=int, default=None, help="tokens per scored window (default: targets length)")
    score.add_argument("--no_progress", action="store_true")
    filtering = actions.add_parser(
        "filter", help="keep the lowest-perplexity documents",
        description="Copy the documents kept by --keep_percent (lowest p%% by perplexity) or --max_perplexity "
        "to --output, with perplexity and score fields, filter.json (counts, cut) and a histogram PNG.",
    )  # fmt: skip
    filtering.add_argument("--input", required=True, metavar="DIR", help="a scored `translationese build` output")
    filtering.add_argument("--output", required=True, metavar="DIR")
    filtering.add_argument("--keep_percent", type=float, default=None, metavar="P")
    filtering.add_argument("--max_perplexity", type=float, default=None, metavar="X")


def _cmd_translationese(args) -> int:
    if args.translationese_command == "build":
        from lowres.translationese.build import BuildConfig, build_shard
        from lowres.translationese.translators import translator_from_spec

        config = BuildConfig(
            source=args.source, src=args.src, tgt=args.tgt, output=args.output, split=args.split, layout=args.layout,
            batch_size=args.batch_size, chunk_documents=args.chunk_documents,
            max_sentence_chars=args.max_sentence_chars, shard_index=args.shard_index, num_shards=args.num_shards,
            max_documents=args.max_documents,
        )  # fmt: skip
        translator = translator_from_spec(args.translator, beam=args.beam, batch_size=args.batch_size,
                                          max_length=args.max_length)  # fmt: skip
        manifest = build_shard(config, translator, progress=not args.no_progress)
        run = manifest.get("this_run", {})
        print(f"{manifest['shard']}: {manifest['counts']['documents']} documents, {manifest['counts']['sentences']} "
              f"sentences ({run.get('documents', 0)} documents this run, {run.get('sentences_per_sec', 0.0):.1f} "
              f"sentences/s, {run.get('tokens_per_sec', 0.0):.0f} tokens/s) in {args.output}")  # fmt: skip
        return 0
    if args.translationese_command == "score":
        from lowres.training.trainer import load_params
        from lowres.translationese.score import TinyLMScorer, score_directory

        if not (Path(args.model_dir) / "lowres.json").is_file():
            raise UsageError(f"--model_dir={args.model_dir} holds no trained model (no lowres.json); train the TinyLM "
                             "with `lowres train --gin_file=translationese/tinylm.gin` first")
        loaded = load_params(Path(args.model_dir), args.step)
        scorer = TinyLMScorer(loaded, batch_size=args.batch_size, window=args.window)
        model = {"model_dir": str(Path(args.model_dir).resolve()), "step": int(loaded["step"])}
        summary = score_directory(args.input, scorer, model=model, progress=not args.no_progress)
        print(f"scored {summary['documents']} documents in {args.input} "
              f"({summary['scored_tokens_this_run']} tokens this run, {summary['seconds']:.1f} s)")
        return 0
    from lowres.translationese.filter import FilterConfig, filter_directory

    report = filter_directory(args.input, args.output, FilterConfig(args.keep_percent, args.max_perplexity))
    cut = "none" if report["cut_perplexity"] is None else f"{report['cut_perplexity']:.4g}"
    print(f"kept {report['kept']} of {report['documents']} documents (dropped {report['dropped']}; perplexity cut "
          f"{cut}) into {args.output}; histogram {Path(args.output) / report['histogram']}")
    return 0


def _cmd_plot(args) -> int:
    from lowres.training.plots import plot_run

    for path in plot_run(Path(args.model_dir)):
        print(f"wrote {path}")
    return 0


def _cmd_models(args) -> int:
    from lowres.models.flops import model_summary_rows

    rows = model_summary_rows(vocab_size=args.vocab_size)
    print(f"vocabulary {args.vocab_size:,}")
    print("| preset | architecture | params | layers | d_model | heads | kv heads | d_ff | train GFLOP/token |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['architecture']} | {r['params'] / 1e6:,.1f}M | {r['layers']} | {r['d_model']} | "
              f"{r['heads']} | {r['kv_heads']} | {r['d_ff']} | {r['flops_per_token'] / 1e9:.3f} |")
    return 0


def _cmd_data_sample(args) -> int:
    import seqio

    from lowres.data.text.builtin_corpus import build_builtin_corpus
    from lowres.data.tasks.samples import resolve_sample_name, sample_task, sample_vocabulary

    corpus = build_builtin_corpus(progress=False)
    vocabulary, info = sample_vocabulary(corpus, Path(args.model_dir) if args.model_dir else None)
    name = resolve_sample_name(args.name or args.objective, corpus, vocabulary, args.lang)
    lengths = {"inputs": args.inputs_length or info.get("inputs_length", 128),
               "targets": args.targets_length or info.get("targets_length", 128)}
    provider = seqio.get_mixture_or_task(name)
    for task in provider.tasks if isinstance(provider, seqio.Mixture) else [provider]:
        print(f"== {task.name}")
        for i, row in enumerate(sample_task(task.name, args.n, lengths), 1):
            print(f"[{i}] mode:    {row['mode']}\n    inputs:  {row['inputs']}\n    targets: {row['targets']}")
    return 0


def _cmd_data(args) -> int:
    if args.data_command == "sample":
        return _cmd_data_sample(args)
    return _cmd_data_describe(args)


def _cmd_data_describe(args) -> int:
    import gin

    import lowres.data.text.corpora  # noqa: F401  (registers the configurables a corpus gin file binds)
    from lowres.data.tasks.describe import describe

    if args.gin_file:
        try:
            gin.parse_config_files_and_bindings([_resolve_gin_file(f) for f in args.gin_file], [],
                                                skip_unknown=True, finalize_config=False)
        except (ValueError, KeyError, SyntaxError) as error:
            raise UsageError(f"gin config: {error}".splitlines()[0]) from error
    vocabulary = None
    if args.model_dir:
        from lowres.data.vocab.vocabulary import load_vocabulary

        run_file = Path(args.model_dir) / "lowres.json"  # read directly: the trainer module loads JAX
        if not run_file.is_file():
            raise UsageError(f"--model_dir={args.model_dir} holds no trained model (no lowres.json)")
        info = json.loads(run_file.read_text(encoding="utf-8"))
        vocabulary = load_vocabulary(Path(args.model_dir) / info["vocabulary"], info["num_sentinels"])
    source = args.source
    if args.lang and source.startswith("text:"):
        from lowres.data.text import corpora

        corpora.declare_corpus(corpora.CorpusSpec("text", source, languages=[args.lang]))
        source = "text"
    print(describe(source, args.tokens, vocabulary, progress=True))
    if source == "builtin":
        from lowres.data.text.builtin_corpus import build_builtin_corpus, describe_table

        print("\nsplits and English-aligned pairs:")
        print(describe_table(build_builtin_corpus(progress=False)))
    return 0


def _cmd_vocab(args) -> int:
    from lowres.data.vocab import vocabulary as vocab_lib
    from lowres.data.vocab import report as vocab_report
    from lowres.data.text.sources import load_documents

    if args.model_dir:
        from lowres.training.trainer import read_run_info

        info = read_run_info(Path(args.model_dir))
        path, num_sentinels = Path(args.model_dir) / info["vocabulary"], info["num_sentinels"]
    else:
        path, num_sentinels = Path(args.vocab), args.num_sentinels
    vocabulary = vocab_lib.load_vocabulary(path, num_sentinels)
    documents = load_documents(args.data, args.split, args.langs.split(",") if args.langs else None, args.lang)
    description = {"file": str(path), "fingerprint": vocab_lib.vocabulary_fingerprint(path, num_sentinels),
                   "data": documents.description}
    report = vocab_report.vocabulary_report(vocabulary, documents.documents, description, progress=True)
    print(vocab_report.report_table(report))
    if args.output:
        json_path, png_path = vocab_report.write_report(report, args.output)
        print(f"wrote {json_path} and {png_path}")
    return 0


def _cmd_bench(args) -> int:
    from lowres.bench import report, suite

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.case != "data" and (args.objective or args.architecture):
        raise UsageError(f"--objective and --architecture apply to `lowres bench data` only, not {args.case}")
    options = suite.Options(args.shape, args.steps, args.synthetic, args.trainer_tokens_per_sec, args.peak_size,
                            args.time_limit_s, args.objective, args.architecture)
    record, table = suite.run_case(args.case, options, log=lambda line: print(line, flush=True))
    print(table)
    if args.output:
        report.write_json(args.output, record)
        print(f"wrote {args.output}")
    if args.json:
        print(json.dumps(record))
    return 0


def _quiet_libraries() -> None:
    """TensorFlow (used only for tf.data) and absl notices (e.g. Orbax read-only mode); errors still show."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    debug = "--debug" in argv
    try:
        rest, bindings = _split_gin_bindings(argv)
        args = _parser().parse_args(rest)
        if bindings and args.command != "train":
            raise UsageError("--gin.NAME=VALUE bindings apply to `lowres train` only")
        if args.command == "train":
            return _cmd_train(args, bindings)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "translate":
            return _cmd_translate(args)
        if args.command == "generate":
            return _cmd_generate(args)
        if args.command == "plot":
            return _cmd_plot(args)
        if args.command == "models":
            return _cmd_models(args)
        if args.command == "translationese":
            return _cmd_translationese(args)
        if args.command == "vocab":
            return _cmd_vocab(args)
        if args.command == "bench":
            return _cmd_bench(args)
        return _cmd_data(args)
    except KeyboardInterrupt:
        print("lowres: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every user-facing error ends here
        if debug:
            raise
        if not isinstance(error, (UsageError, ValueError, FileNotFoundError, PermissionError, FloatingPointError)):
            print(f"lowres: internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)",
                  file=sys.stderr)
            return 1
        print(f"lowres: error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
