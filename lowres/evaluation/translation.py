"""Translation evaluation on FLORES-layout directories: aligned sentence pairs, translated by a decoding
model and scored with chrF++ and BLEU (lowres.text_metrics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lowres.data.text import readers
from lowres.data.languages import normalize_language
from lowres.errors import DataError, MissingFileError, UsageError
from lowres.text_metrics import translation_scores


def parse_directions(spec: str) -> list[tuple[str, str]]:
    """`eng_Latn-pan_Guru,pan-eng` -> normalised (source, target) pairs."""
    pairs = []
    for item in spec.split(","):
        src, sep, tgt = item.strip().partition("-")
        if not sep or not src or not tgt:
            raise UsageError(f"--translate={spec!r}: write directions as SRC-TGT, comma separated (eng_Latn-pan_Guru)")
        pairs.append((normalize_language(src), normalize_language(tgt)))
    return pairs


def flores_pair(directory: Path, split: str, source: str, target: str) -> tuple[list[str], list[str]]:
    """Aligned source and reference sentences of a FLORES-layout directory (`<code>.<split>` files)."""
    files = readers.flores_files(directory, split)
    missing = [lang for lang in (source, target) if lang not in files]
    if missing:
        raise MissingFileError(f"{directory}: no {split} file for {missing} (FLORES layout: DIR/<code>.{split})")
    src, ref = (files[lang].read_text(encoding="utf-8").splitlines() for lang in (source, target))
    if len(src) != len(ref):
        raise DataError(f"{files[source]} has {len(src)} lines but {files[target]} has {len(ref)}; FLORES files align")
    return src, ref


def evaluate_directions(
    translate: Callable[[Sequence[str], str], list[str]],
    directory: Path,
    split: str,
    directions: Sequence[tuple[str, str]],
    limit: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Scores `translate(sentences, target_lang)` on each direction; keys are `src-tgt`."""
    results = {}
    for source, target in directions:
        src, ref = flores_pair(directory, split, source, target)
        if limit:
            src, ref = src[:limit], ref[:limit]
        results[f"{source}-{target}"] = translation_scores(translate(src, target), ref)
    return results
