"""File translation: streaming, batched, in input order and resumable after a kill.

Each input line becomes `[mode] <2tgt> source tokens EOS` (the Translation objective's layout).
Output lines are appended one finished batch at a time and fsynced; a rerun counts the complete
lines already written (dropping a torn last line) and continues after them, so lines are never
duplicated or dropped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.errors import ConfigError, DataError, MissingFileError


def translation_inputs(
    vocabulary, text: str, target_lang: str, max_length: int, mode_token: str | None = None
) -> list[int]:
    """Model inputs for one sentence: [mode] <2tgt> tokens, trimmed to `max_length` with EOS last."""
    try:
        prefix = [vocab_lib.reserved_id(vocabulary, vocab_lib.language_tag(target_lang))]
        if mode_token:
            prefix.insert(0, vocab_lib.reserved_id(vocabulary, mode_token))
    except KeyError as error:
        raise ConfigError(f"the model's vocabulary cannot translate: {error.args[0]}") from error
    tokens = prefix + list(vocabulary.encode(text))
    return tokens[: max_length - 1] + [vocabulary.eos_id]


def complete_lines(path: Path) -> int:
    """Number of newline-terminated lines in `path`; a torn last line (no newline) is cut off."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            handle.truncate(keep)
    return data[:keep].count(b"\n")


def _lines(path: Path, skip: int) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number >= skip:
                yield line.rstrip("\n").rstrip("\r")


def _batches(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def translate_lines(generator, vocabulary, lines: Sequence[str], target_lang: str, max_input_length: int,
                    mode_token: str | None = None) -> list[str]:  # fmt: skip
    """Translations of up to `generator.batch_size` lines; blank lines stay blank."""
    todo = [i for i, line in enumerate(lines) if line.strip()]
    outputs = [""] * len(lines)
    if todo:
        inputs = [translation_inputs(vocabulary, lines[i], target_lang, max_input_length, mode_token) for i in todo]
        for i, ids in zip(todo, generator.generate(inputs)):
            outputs[i] = vocabulary.decode(ids).replace("\n", " ").replace("\r", " ")
    return outputs


def translate_file(
    generator,
    vocabulary,
    input_path: Path,
    output_path: Path,
    target_lang: str,
    max_input_length: int,
    mode_token: str | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Translates `input_path` line by line into `output_path`, continuing a previous partial run."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise MissingFileError(f"--input={input_path} does not exist or is not a file")
    with open(input_path, "rb") as handle:
        total = sum(1 for _ in handle)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    done = complete_lines(output_path)
    if done > total:
        raise DataError(f"--output={output_path} has {done} lines but --input has {total}: not a partial "
                         "translation of this input; choose another --output")
    start, started = done, time.perf_counter()
    bar = tqdm(total=total, initial=done, unit="sent", disable=not progress, dynamic_ncols=True, desc="translate")
    try:
        with open(output_path, "a", encoding="utf-8") as out:
            for batch in _batches(_lines(input_path, done), generator.batch_size):
                translated = translate_lines(generator, vocabulary, batch, target_lang, max_input_length, mode_token)
                out.write("".join(line + "\n" for line in translated))
                out.flush()
                os.fsync(out.fileno())
                done += len(batch)
                bar.update(len(batch))
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    return {"lines": total, "resumed_at": start, "translated": done - start, "seconds": seconds,
            "sentences_per_sec": (done - start) / seconds if seconds > 0 else 0.0}
