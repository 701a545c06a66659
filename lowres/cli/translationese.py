"""`lowres translationese build|score|filter`: synthetic corpora by MT, TinyLM scores, filtering."""

from __future__ import annotations

from pathlib import Path

from lowres.cli import common


def add_parser(commands) -> None:
    actions = common.add_action_group(
        commands, "translationese", "build, score and filter machine-translated corpora",
        "Translationese: translate a monolingual source (build), score each document with a "
        "TinyLM (score), keep the most fluent part (filter). The output reads back as the data source "
        "jsonl:DIR/docs-*.jsonl with kind='translationese'.",
    )  # fmt: skip
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


def build(args) -> int:
    from lowres.translationese.build import BuildConfig, build_shard
    from lowres.translationese.translators import translator_from_spec

    with common.data_errors():  # languages are normalised and the source is opened in here
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


def score(args) -> int:
    from lowres.checkpoints.trained_model import load_trained_model
    from lowres.run_dir import require_run_dir
    from lowres.translationese.score import TinyLMScorer, score_directory

    require_run_dir(args.model_dir, how=f"`lowres train --gin_file=translationese/tinylm.gin --model_dir={args.model_dir}`")
    model = load_trained_model(args.model_dir, args.step)
    scorer = TinyLMScorer(model, batch_size=args.batch_size, window=args.window)
    described = {"model_dir": str(Path(args.model_dir).resolve()), "step": int(model.step)}
    summary = score_directory(args.input, scorer, model=described, progress=not args.no_progress)
    print(f"scored {summary['documents']} documents in {args.input} "
          f"({summary['scored_tokens_this_run']} tokens this run, {summary['seconds']:.1f} s)")
    return 0


def filter_documents(args) -> int:
    from lowres.translationese.filter import FilterConfig, filter_directory

    report = filter_directory(args.input, args.output, FilterConfig(args.keep_percent, args.max_perplexity))
    cut = "none" if report["cut_perplexity"] is None else f"{report['cut_perplexity']:.4g}"
    print(f"kept {report['kept']} of {report['documents']} documents (dropped {report['dropped']}; perplexity cut "
          f"{cut}) into {args.output}; histogram {Path(args.output) / report['histogram']}")
    return 0


ACTIONS = {"build": build, "score": score, "filter": filter_documents}


def run(args) -> int:
    return ACTIONS[args.translationese_command](args)
