"""Pieces several commands share: gin files and `--gin.NAME=VALUE` bindings, the writable-directory
check, the decode options, reading a vocabulary, and turning the builtin errors some libraries still
raise for bad input into `LowresError`s at the command-line edge."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from lowres.errors import (
    DataError,
    LowresError,
    MissingFileError,
    NotWritableError,
    UsageError,
)


def first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


@contextlib.contextmanager
def reraise_as(error_type: type[LowresError], *caught: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Re-raises the `caught` builtin errors of the block as `error_type` (first line of the message)."""
    try:
        yield
    except LowresError:
        raise
    except caught as error:
        raise error_type(prefix + first_line(error)) from error


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """An unreadable SOURCE or an unknown language code (still plain ValueErrors in the data library)
    as a DataError."""
    from lowres.data.languages import UnknownLanguageError
    from lowres.data.text.sources import SourceError

    with reraise_as(DataError, SourceError, UnknownLanguageError):
        yield


def split_gin_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
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


def check_writable(directory: Path, option: str) -> None:
    """Creates `directory` if needed and writes a probe file there. The probe's name is unique, so the
    hosts of a multi-host run can check one shared directory at the same moment."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".lowres-write-test-"):
            pass
    except OSError as error:
        raise NotWritableError(
            f"{option}={directory} is not writable ({error.strerror}); choose a directory you can write to"
        ) from error


def add_action_group(commands, name: str, help: str, description: str) -> argparse._SubParsersAction:
    """`lowres NAME ACTION ...`: a command whose ACTION is required; the action lands in args.NAME_command."""
    group = commands.add_parser(name, help=help, description=description)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions


def add_decode_options(parser: argparse.ArgumentParser, beam: int) -> None:
    parser.add_argument("--beam", type=int, default=beam, help=f"beam size (1 = greedy; default {beam})")
    parser.add_argument("--max_length", type=int, default=None, help="most output tokens (default: the run's targets length)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def load_vocabulary(model_dir: str | None, file: str | None = None, num_sentinels: int = 100):
    """(vocabulary, file, num_sentinels) of a run directory, else of a vocabulary file. Reads the run's
    lowres.json without the checkpoint code, so no JAX is imported."""
    from lowres.run_dir import read_run_info

    if model_dir:
        info = read_run_info(model_dir)
        path, num_sentinels = Path(model_dir) / info.vocabulary, info.num_sentinels
    else:
        path = Path(file)
    from lowres.data.vocab import (
        vocabulary as vocab_lib,  # imports TensorFlow (seqio): after the check
    )

    with reraise_as(MissingFileError, FileNotFoundError):
        return vocab_lib.load_vocabulary(path, num_sentinels), path, num_sentinels
