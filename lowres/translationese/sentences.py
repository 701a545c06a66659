"""Language-aware sentence splitting that keeps paragraphs and documents, and reassembles them in order.

MT models translate sentences (or short chunks) best, so each document is cut into paragraphs (its
lines) and each paragraph into sentences; `join_document` puts translated sentences back in place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lowres.data.languages import normalize_language

# Sentence-final punctuation per script (ISO 15924); every script also ends sentences at . ! ?
_TERMINALS = {
    "Deva": "।॥", "Guru": "।॥", "Beng": "।॥", "Orya": "।॥", "Gujr": "।॥", "Telu": "।॥", "Knda": "।॥",
    "Mlym": "।॥", "Taml": "।॥", "Sinh": "।෴",
    "Arab": "؟۔؛", "Hani": "。！？", "Hans": "。！？", "Hant": "。！？", "Jpan": "。！？", "Kore": "。！？",
    "Ethi": "።፧፨", "Mymr": "။", "Armn": "։՜՞", "Tibt": "།", "Khmr": "។៕", "Grek": ";",
}
# Scripts written without spaces between words or sentences: sentences are rejoined with nothing.
_NO_SPACE = {"Hani", "Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"}
# Closing quotes and brackets that stay with the sentence they end.
_CLOSERS = "\"'”’»)]}」』）"
# Lower-case abbreviations (Latin, Cyrillic) after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf no vol fig al approx dept est inc ltd co corp jan feb "
    "mar apr jun jul aug sep sept oct nov dec ca gen col lt sgt rev hon pp ed eds".split()
)


def _script(lang: str) -> str:
    return normalize_language(lang).partition("_")[2]


def _pattern(script: str) -> re.Pattern:
    terminals = re.escape(".!?…" + _TERMINALS.get(script, ""))
    closers = re.escape(_CLOSERS)
    space = r"\s*" if script in _NO_SPACE or script in ("Hani", "Jpan", "Kore") else r"\s+"
    return re.compile(rf"[{terminals}]+[{closers}]*(?={space}\S)|[{terminals}]+[{closers}]*{space}(?=\S)")


def _ends_abbreviation(text: str) -> bool:
    """Whether `text` (ending in '.') ends with an abbreviation or an initial such as 'J.'."""
    word = text[:-1].rsplit(None, 1)[-1] if text[:-1].split() else ""
    word = word.lstrip("([\"'“‘«").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(paragraph: str, lang: str, max_chars: int = 0) -> list[str]:
    """Sentences of one paragraph (a line of text), in order; `max_chars` > 0 also cuts longer ones at spaces."""
    script = _script(lang)
    text = " ".join(paragraph.split()) if script not in _NO_SPACE else paragraph.strip()
    if not text:
        return []
    sentences, start = [], 0
    for match in _pattern(script).finditer(text):
        end = match.end()
        piece = text[start:end].strip()
        if match.group().rstrip().rstrip(_CLOSERS).endswith(".") and _ends_abbreviation(piece.rstrip(_CLOSERS)):
            continue
        following = text[end:].lstrip()
        if script not in _NO_SPACE and following[:1].islower():  # "e.g. the", "3.5 million": no break
            continue
        sentences.append(piece)
        start = end
    if text[start:].strip():
        sentences.append(text[start:].strip())
    if max_chars > 0:
        sentences = [chunk for sentence in sentences for chunk in _chunks(sentence, max_chars)]
    return sentences


def _chunks(sentence: str, max_chars: int) -> list[str]:
    """A sentence cut at spaces into pieces of at most `max_chars` (a longer single word stays whole)."""
    if len(sentence) <= max_chars:
        return [sentence]
    chunks, current = [], ""
    for word in sentence.split(" "):
        if current and len(current) + 1 + len(word) > max_chars:
            chunks.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return chunks + [current] if current else chunks


def split_document(text: str, lang: str, max_chars: int = 0) -> list[list[str]]:
    """Paragraphs (non-blank lines) of a document, each as its list of sentences."""
    return [split_sentences(line, lang, max_chars) for line in text.split("\n") if line.strip()]


def join_document(paragraphs: Sequence[Sequence[str]], lang: str) -> str:
    """The inverse of `split_document` for text in `lang`: sentences joined by a space (none in CJK/Thai), paragraphs by newlines."""
    glue = "" if _script(lang) in _NO_SPACE else " "
    return "\n".join(glue.join(s.strip() for s in sentences if s.strip()) for sentences in paragraphs)
