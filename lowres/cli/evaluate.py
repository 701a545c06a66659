"""`lowres eval`: per-language bits per byte (and optionally translation scores) of trained models."""

from __future__ import annotations

from pathlib import Path

from lowres.cli import common
from lowres.errors import NotWritableError


def add_parser(commands) -> None:
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
                          help="builtin | flores:DIR (DIR/<code>.<split>) | text:FILE (with --lang) | text:DIR/{lang}.{split}.txt (a pattern as training reads it; validation by default) | "
                          "task:NAME[:split] (a seqio task's raw text; the run's own tasks are registered)")
    evaluate.add_argument("--output", required=True, metavar="FILE.json", help="where to write the results")
    evaluate.add_argument("--langs", default=None, metavar="a,b,...", help="languages to evaluate (default: all)")
    evaluate.add_argument("--lang", default=None, metavar="CODE", help="language of a text:FILE source")
    evaluate.add_argument("--split", default=None, metavar="NAME",
                          help="split to evaluate (builtin: validation; flores: dev)")
    evaluate.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    evaluate.add_argument("--batch_size", type=int, default=32)


def run(args) -> int:
    from lowres.run_dir import require_run_dir

    model_dirs = [require_run_dir(d) for d in args.model_dir]  # before any data is read
    from lowres.evaluation import report

    with common.data_errors():
        reports = report.run_eval(
            model_dirs, args.data, args.split, args.langs.split(",") if args.langs else None,
            args.lang, args.step, args.batch_size, args.translate, args.translate_limit, args.beam,
        )
    with common.reraise_as(NotWritableError, PermissionError):
        markdown, paths = report.write_outputs(reports, Path(args.output))
    print(markdown)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
