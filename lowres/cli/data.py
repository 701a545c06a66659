"""`lowres data describe|sample|cache`: inspect data sources, mixtures and objectives; build token caches."""

from __future__ import annotations

from pathlib import Path

from lowres.cli import common
from lowres.errors import UsageError
from lowres.gin_files import parse_gin


def add_parser(commands) -> None:
    data_commands = common.add_action_group(commands, "data", "inspect data sources", "Inspect data sources.")
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
    cache = data_commands.add_parser(
        "cache", help="tokenize a corpus once per vocabulary (local processes or Apache Beam)",
        description="Build (or complete, or check) the token cache that training reads: every language and pair of "
        "SOURCE tokenized with --model_dir's vocabulary (or --vocab). Runs reuse it when their corpus, vocabulary "
        "and host shard match. An interrupted build resumes where it stopped. SOURCE: flores:DIR, text:GLOB, "
        "jsonl:GLOB, udhr:GLOB, builtin, or a corpus declared in --gin_file.",
    )
    split = data_commands.add_parser(
        "split", help="hold out whole documents of a source as a validation split (FLORES dev has none)",
        description="Write DIR/<lang>.train.txt and DIR/<lang>.validation.txt (one document per line) from SOURCE, "
        "holding out the same documents in every language (chosen by a seeded hash of the document id); train "
        "on them with DataConfig.source = \"text:DIR/{lang}.{split}.txt\". DIR/split.json records the sizes.",
    )
    split.add_argument("source", metavar="SOURCE", help="e.g. flores:../shared/data/flores200/dev")
    split.add_argument("--langs", required=True, metavar="A,B", help="languages to write, e.g. eng_Latn,yor_Latn")
    split.add_argument("--output", required=True, metavar="DIR")
    split.add_argument("--heldout_fraction", type=float, default=0.2, help="share of documents held out (default 0.2)")
    split.add_argument("--source_split", default="dev", help="the split of SOURCE to divide (default dev)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--max_train_bytes", action="append", default=[], metavar="LANG=BYTES",
                       help="keep only the first BYTES of LANG's training documents (a small language); repeatable")
    cache.add_argument("source", metavar="SOURCE")
    cache.add_argument("--model_dir", default=None, metavar="DIR", help="a run whose vocabulary tokenizes")
    cache.add_argument("--vocab", default=None, metavar="FILE", help="a vocabulary file instead of --model_dir's")
    cache.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                       help="gin file declaring corpora (declared_corpora.specs); repeatable")
    cache.add_argument("--cache_dir", default=None, metavar="DIR",
                       help="cache root (default: the lowres cache directory, $LOWRES_CACHE_DIR); training must see "
                       "the same root")
    cache.add_argument("--runner", default="local", metavar="NAME", help="local (default) or beam")
    cache.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local runner: processes (default: in this process for small corpora, else one per CPU)")
    cache.add_argument("--parts_per_entry", type=int, default=1, metavar="N",
                       help="split each language into up to N parts tokenized in parallel (whole files)")
    cache.add_argument("--shard_index", type=int, default=0, metavar="I", help="this host's shard (multi-host runs)")
    cache.add_argument("--num_shards", type=int, default=1, metavar="N", help="hosts of the training run")
    cache.add_argument("--beam_option", action="append", default=[], metavar="ARG",
                       help="a Beam pipeline argument, e.g. --beam_option=--runner=DataflowRunner; repeatable")
    cache.add_argument("--repair", action="store_true", help="rebuild entries whose files are damaged")


def describe(args) -> int:
    if args.gin_file:  # lowres.data.text.corpora registers the configurables a corpus gin file binds
        parse_gin(args.gin_file, [], registers="lowres.data.text.corpora", skip_unknown=True,
                         finalize_config=False)
    vocabulary = common.load_vocabulary(args.model_dir)[0] if args.model_dir else None
    from lowres.data.tasks.describe import describe as describe_source

    source = args.source
    with common.data_errors():
        if args.lang and source.startswith("text:"):
            from lowres.data.text import corpora

            corpora.declare_corpus(corpora.CorpusSpec("text", source, languages=[args.lang]))
            source = "text"
        print(describe_source(source, args.tokens, vocabulary, progress=True))
    if source == "builtin":
        from lowres.data.text.builtin_corpus import build_builtin_corpus, describe_table

        print("\nsplits and English-aligned pairs:")
        print(describe_table(build_builtin_corpus(progress=False)))
    return 0


def sample(args) -> int:
    import seqio

    from lowres.data.tasks.registration import denoiser_views
    from lowres.data.tasks.samples import (
        resolve_sample_name,
        sample_task,
        sample_vocabulary,
    )
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    corpus = build_builtin_corpus(progress=False)
    vocabulary, info = sample_vocabulary(corpus, Path(args.model_dir) if args.model_dir else None)
    with common.reraise_as(UsageError, ValueError):  # an unknown task, mixture or language
        name = resolve_sample_name(args.name or args.objective, corpus, vocabulary, args.lang)
    lengths = {"inputs": args.inputs_length or (info.inputs_length if info else 128),
               "targets": args.targets_length or (info.targets_length if info else 128)}
    provider = seqio.get_mixture_or_task(name)
    tasks = [task.name for task in (provider.tasks if isinstance(provider, seqio.Mixture) else [provider])]
    # A language task picks a denoiser per example: show each denoiser's examples (its one-denoiser views).
    shown = [view for task in tasks for view in (denoiser_views(task) or (task,))]
    for task in shown:
        print(f"== {task}")
        for i, row in enumerate(sample_task(task, args.n, lengths), 1):
            print(f"[{i}] mode:    {row['mode']}\n    inputs:  {row['inputs']}\n    targets: {row['targets']}")
    return 0


def cache(args) -> int:
    if args.gin_file:
        parse_gin(args.gin_file, [], registers="lowres.data.text.corpora", skip_unknown=True,
                         finalize_config=False)
    if bool(args.model_dir) == bool(args.vocab):
        raise UsageError("lowres data cache: give the vocabulary as --model_dir=DIR (a run's) or --vocab=FILE, one of them")
    vocabulary = common.load_vocabulary(args.model_dir, args.vocab)[0]
    from lowres.data.cache import build_token_cache

    with common.data_errors():
        built = build_token_cache(args.source, vocabulary, root=args.cache_dir, shard_index=args.shard_index,
                                  num_shards=args.num_shards, parts_per_entry=args.parts_per_entry, workers=args.workers,
                                  runner=args.runner, beam_options=tuple(args.beam_option), repair=args.repair,
                                  progress=True)  # fmt: skip
    print(f"{built.directory}: {built.report.summary()}")
    return 0


def split(args) -> int:
    from lowres.data.text.heldout import write_heldout_split

    limits = {}
    for item in args.max_train_bytes:
        lang, sep, size = item.partition("=")
        if not sep or not size.isdigit():
            raise UsageError(f"--max_train_bytes={item}: write LANG=BYTES, e.g. yor_Latn=20000")
        limits[lang] = int(size)
    check_output = Path(args.output)
    common.check_writable(check_output, "--output")
    with common.data_errors():
        record = write_heldout_split(args.source, [x for x in args.langs.split(",") if x], check_output,
                                     fraction=args.heldout_fraction, source_split=args.source_split, seed=args.seed,
                                     max_train_bytes=limits)
    for lang, parts in record["languages"].items():
        print(f"{lang}: train {parts['train']['documents']} documents ({parts['train']['bytes']:,} bytes), "
              f"validation {parts['validation']['documents']} ({parts['validation']['bytes']:,} bytes)")
    print(f"wrote {check_output}; train with DataConfig.source = \"text:{check_output}/{{lang}}.{{split}}.txt\"")
    return 0


ACTIONS = {"describe": describe, "sample": sample, "cache": cache, "split": split}


def run(args) -> int:
    return ACTIONS[args.data_command](args)
