"""Configurable document cleaning that counts what each step drops.

Steps run in this order, each switchable in `CleaningConfig`: provenance score filter, Unicode
normalisation, whitespace and control-character cleanup, length filters, script consistency, exact
and near-duplicate removal.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator

import gin
import numpy as np
import pycountry

from lowres.data.languages import script_of
from lowres.data.text.readers import Document
from lowres.config_fields import any_value, at_least, between, one_of, validated
from lowres.errors import ConfigError, DataError

__all__ = [
    "CleaningConfig",
    "CleaningReport",
    "MinHashDeduplicator",
    "clean",
    "clean_iter",
    "clean_whitespace",
    "script_share",
]

STEPS = ("min_score", "whitespace", "too_short", "too_long", "script", "exact_duplicate", "near_duplicate")


@gin.configurable
@validated(
    min_score=any_value("a provenance score threshold"), normalization=one_of("NFC", "NFKC"), min_chars=at_least(0),
    max_chars=at_least(1), min_script_share=between(0.0, 1.0), near_dup_threshold=between(0.0, 1.0, low_open=True),
    shingle_size=at_least(1), num_perm=at_least(1), bands=at_least(1), seed=at_least(0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class CleaningConfig:
    """Which cleaning steps run, and their thresholds; None or False switches a step off."""

    min_score: float | None = None  # translationese: drop documents whose provenance score is lower or absent
    normalization: str | None = "NFC"  # "NFC", "NFKC" or None
    clean_whitespace: bool = True
    keep_newlines: bool = True  # False joins lines with spaces (for one-document-per-line output)
    min_chars: int | None = None
    max_chars: int | None = None
    script_check: bool = False
    min_script_share: float = 0.5  # share of letters that must be in the language's script
    exact_dedup: bool = True
    near_dedup: bool = False
    near_dup_threshold: float = 0.8  # estimated Jaccard similarity of character shingles
    shingle_size: int = 5
    num_perm: int = 128
    bands: int = 32  # LSH bands; num_perm / bands rows each
    seed: int = 0

    def __post_init__(self):
        if self.num_perm % self.bands:
            raise ConfigError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")


@dataclasses.dataclass
class CleaningReport:
    """Documents seen, kept, dropped per step and modified per step."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    modified: dict[str, int] = dataclasses.field(default_factory=lambda: {"normalization": 0, "whitespace": 0})

    def table(self) -> str:
        """A plain-text table of the counts, one step per row."""
        rows = [("input", self.input)]
        rows += [(f"modified: {step}", n) for step, n in self.modified.items()]
        rows += [(f"dropped: {step}", n) for step, n in self.dropped.items()]
        rows.append(("kept", self.kept))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {n:>10,}" for name, n in rows)


# ---------------------------------------------------------------- text steps

_CRLF_RE = re.compile(r"\r\n?")
_SPACES_RE = re.compile(r"[^\S\t\n]+")  # whitespace other than tab and newline
_BLANK_LINES_RE = re.compile(r"\n{3,}")


def clean_whitespace(text: str, keep_newlines: bool = True) -> str:
    """Drops C0/C1 controls (whitespace controls become spaces), keeps tab/newline, collapses spaces."""
    text = _CRLF_RE.sub("\n", text)
    text = "".join(
        (" " if ch.isspace() else "") if unicodedata.category(ch) == "Cc" and ch not in "\t\n" else ch for ch in text
    )
    text = _SPACES_RE.sub(" ", text)
    if not keep_newlines:
        return _SPACES_RE.sub(" ", text.replace("\n", " ")).strip()
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


# Unicode character-name prefixes of scripts whose ISO 15924 name is not their Unicode name.
_SCRIPT_PREFIXES = {
    "Hani": ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"),
    "Hans": ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"),
    "Hant": ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"),
    "Jpan": ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA"),
    "Kore": ("HANGUL", "CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"),
    "Hang": ("HANGUL",),
    "Orya": ("ORIYA",),
    "Laoo": ("LAO",),
    "Nkoo": ("NKO",),
    "Cans": ("CANADIAN SYLLABICS",),
    "Olck": ("OL CHIKI",),
    "Vaii": ("VAI",),
    "Tfng": ("TIFINAGH",),
}


@functools.lru_cache(maxsize=256)
def _script_prefixes(script: str) -> tuple[str, ...]:
    """Unicode name prefixes of an ISO 15924 script: the table above, else its English name's first word."""
    if script in _SCRIPT_PREFIXES:
        return _SCRIPT_PREFIXES[script]
    record = pycountry.scripts.get(alpha_4=script)
    if record is None:
        raise DataError(f"unknown ISO 15924 script {script!r}")
    return (re.split(r"[\s(,]", record.name)[0].upper(),)


def script_share(text: str, script: str) -> float | None:
    """Share of the letters in `text` whose Unicode name starts with `script`'s prefix; None without letters."""
    prefixes = _script_prefixes(script)
    letters = matching = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "L" or category in ("Mn", "Mc"):  # marks: Indic vowel signs carry the script
            name = unicodedata.name(ch, "")
            if not name or name.startswith("COMBINING"):
                continue
            letters += 1
            matching += name.startswith(prefixes)
    return matching / letters if letters else None


# ---------------------------------------------------------------- near duplicates

_PRIME = (1 << 31) - 1


class MinHashDeduplicator:
    """MinHash over character shingles with LSH banding; `is_duplicate` remembers what it keeps."""

    def __init__(
        self, threshold: float = 0.8, shingle_size: int = 5, num_perm: int = 128, bands: int = 32, seed: int = 0
    ):
        rng = random.Random(seed)
        self.threshold, self.shingle_size, self.bands = threshold, shingle_size, bands
        self.rows = num_perm // bands
        self._a = np.array([rng.randrange(1, _PRIME) for _ in range(num_perm)], dtype=np.uint64)
        self._b = np.array([rng.randrange(0, _PRIME) for _ in range(num_perm)], dtype=np.uint64)
        self._buckets: dict[tuple[int, bytes], list[int]] = {}
        self._signatures: list[np.ndarray] = []

    def signature(self, text: str) -> np.ndarray:
        """num_perm minimum hashes of the text's shingles (lower-cased, whitespace collapsed)."""
        text = " ".join(text.lower().split())
        n = self.shingle_size
        shingles = {text[i : i + n] for i in range(max(1, len(text) - n + 1))}
        hashes = np.fromiter(
            (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") % _PRIME for s in shingles),
            dtype=np.uint64,
            count=len(shingles),
        )
        return ((self._a[:, None] * hashes[None, :] + self._b[:, None]) % _PRIME).min(axis=1)

    def is_duplicate(self, text: str) -> bool:
        """True if `text` resembles a kept text at >= threshold estimated Jaccard; else keeps it."""
        sig = self.signature(text)
        keys = [(band, sig[band * self.rows : (band + 1) * self.rows].tobytes()) for band in range(self.bands)]
        candidates = {index for key in keys for index in self._buckets.get(key, ())}
        if any(np.mean(self._signatures[index] == sig) >= self.threshold for index in candidates):
            return True
        self._signatures.append(sig)
        for key in keys:
            self._buckets.setdefault(key, []).append(len(self._signatures) - 1)
        return False


# ---------------------------------------------------------------- driver


def clean_iter(documents: Iterable[Document], config: CleaningConfig, report: CleaningReport) -> Iterator[Document]:
    """Cleaned documents, streamed; `report` is updated as they pass."""
    seen: set[bytes] = set()
    near = (
        MinHashDeduplicator(config.near_dup_threshold, config.shingle_size, config.num_perm, config.bands, config.seed)
        if config.near_dedup
        else None
    )
    for doc in documents:
        report.input += 1
        if config.min_score is not None:
            score = (doc.provenance or {}).get("score")
            if score is None or not float(score) >= config.min_score:
                report.dropped["min_score"] += 1
                continue
        text = doc.text
        if config.normalization:
            normalized = unicodedata.normalize(config.normalization, text)
            report.modified["normalization"] += normalized != text
            text = normalized
        if config.clean_whitespace:
            cleaned = clean_whitespace(text, config.keep_newlines)
            report.modified["whitespace"] += cleaned != text
            text = cleaned
            if not text:
                report.dropped["whitespace"] += 1
                continue
        if config.min_chars is not None and len(text) < config.min_chars:
            report.dropped["too_short"] += 1
            continue
        if config.max_chars is not None and len(text) > config.max_chars:
            report.dropped["too_long"] += 1
            continue
        if config.script_check:
            share = script_share(text, script_of(doc.lang))
            if share is not None and share < config.min_script_share:
                report.dropped["script"] += 1
                continue
        if config.exact_dedup:
            digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
            if digest in seen:
                report.dropped["exact_duplicate"] += 1
                continue
            seen.add(digest)
        if near is not None and near.is_duplicate(text):
            report.dropped["near_duplicate"] += 1
            continue
        report.kept += 1
        yield doc if text == doc.text else dataclasses.replace(doc, text=text)


def clean(documents: Iterable[Document], config: CleaningConfig | None = None) -> tuple[list[Document], CleaningReport]:
    """Cleans `documents` with `config` (defaults: NFC, whitespace cleanup, exact dedup); returns kept and report."""
    report = CleaningReport()
    kept = list(clean_iter(documents, config or CleaningConfig(), report))
    return kept, report
