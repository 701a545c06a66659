"""`lowres vocab report`: fertility, byte-fallback share and unknown rate of a vocabulary per language."""

from __future__ import annotations

from lowres.cli import common
from lowres.errors import NotWritableError


def add_parser(commands) -> None:
    vocab_commands = common.add_action_group(commands, "vocab", "inspect vocabularies", "Inspect vocabularies.")
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
                              help="builtin | flores:DIR (DIR/<code>.<split>) | text:FILE (with --lang) | text:DIR/{lang}.{split}.txt")
    vocab_report.add_argument("--langs", default=None, metavar="a,b,...", help="languages (default: all)")
    vocab_report.add_argument("--lang", default=None, metavar="CODE", help="language of a text:FILE source")
    vocab_report.add_argument("--split", default=None, metavar="NAME",
                              help="split to read (builtin: validation; flores: dev)")
    vocab_report.add_argument("--output", default=None, metavar="FILE.json",
                              help="write the report here and the chart to FILE.png")


def report(args) -> int:
    from lowres.data.text.sources import load_documents
    from lowres.data.vocab import report as vocab_report
    from lowres.data.vocab import vocabulary as vocab_lib

    vocabulary, path, num_sentinels = common.load_vocabulary(args.model_dir, args.vocab, args.num_sentinels)
    with common.data_errors():
        documents = load_documents(args.data, args.split, args.langs.split(",") if args.langs else None, args.lang)
    description = {"file": str(path), "fingerprint": vocab_lib.vocabulary_fingerprint(path, num_sentinels),
                   "data": documents.description}
    result = vocab_report.vocabulary_report(vocabulary, documents.documents, description, progress=True)
    print(vocab_report.report_table(result))
    if args.output:
        with common.reraise_as(NotWritableError, PermissionError):
            json_path, png_path = vocab_report.write_report(result, args.output)
        print(f"wrote {json_path} and {png_path}")
    return 0


def run(args) -> int:
    return {"report": report}[args.vocab_command](args)
