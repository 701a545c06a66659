"""The `lowres` command line: train, eval, decode, data, vocabularies, benchmarks.

One module per command family, each with its parser beside its handler. Errors a user can fix (a
`LowresError`: a missing file, an unknown binding or language, an unwritable directory) print one
line naming the problem and exit with code 2; anything else is a bug in lowres, reported as an
internal error with exit code 1. `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from lowres.cli import (
    bench,
    common,
    data,
    decode,
    evaluate,
    export,
    fit,
    models,
    plot,
    sweep,
    train,
    translationese,
    vocab,
)
from lowres.errors import LowresError, UsageError

# Command name -> the module that parses and runs it, in the order `lowres --help` lists them.
COMMANDS = {
    "train": train,
    "eval": evaluate,
    "translate": decode,
    "generate": decode,
    "translationese": translationese,
    "export": export,
    "plot": plot,
    "fit": fit,
    "models": models,
    "data": data,
    "vocab": vocab,
    "sweep": sweep,
    "bench": bench,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowres",
        description="Pretrain and evaluate language models for low-resource languages (JAX, SeqIO, Flax, Orbax).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in dict.fromkeys(COMMANDS.values()):  # each module once, in table order
        module.add_parser(commands)
    return parser


def _quiet_libraries() -> None:
    """TensorFlow (used only for tf.data) and absl notices (e.g. Orbax read-only mode); errors still show."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record (tests swap it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def _lowres_logs_on_stderr():
    """lowres's own log lines (start-up steps: vocabulary, token cache) on stderr, one plain line each,
    while a command runs; the logger is left as it was afterwards (main may be called in-process)."""
    logger = logging.getLogger("lowres")
    saved = (logger.level, logger.propagate)
    handler = _StderrHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    with _lowres_logs_on_stderr():
        try:
            return _run(argv)
        finally:
            _forget_gin_bindings()


def _forget_gin_bindings() -> None:
    """A command run in-process (a test, a notebook, a script) leaves no gin bindings behind: a later
    `StreamConfig()` elsewhere in the process would otherwise take this command's `--gin.` values."""
    gin = sys.modules.get("gin")
    if gin is not None:
        with gin.unlock_config():
            gin.clear_config()


def _run(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        rest, bindings = common.split_gin_bindings(argv)
        args = build_parser().parse_args(rest)
        if bindings and args.command != "train":
            raise UsageError("--gin.NAME=VALUE bindings apply to `lowres train` only")
        args.gin_bindings = bindings
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("lowres: interrupted", file=sys.stderr)
        return 130
    except LowresError as error:
        if debug:
            raise
        print(f"lowres: error: {common.first_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if debug:
            raise
        print(f"lowres: internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
