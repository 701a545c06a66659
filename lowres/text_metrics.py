"""Text metrics through sacrebleu: corpus chrF++ and BLEU with their signatures, the length ratio, and
the seqio predict metric that translation tasks declare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

from lowres.errors import DataError


def translation_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus chrF++ (chrF with word bigrams) and BLEU of one system against one reference each."""
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} hypotheses but {len(references)} references; they must align line by line")
    chrf, bleu = CHRF(word_order=2), BLEU()
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    return {
        "chrf++": chrf_score.score,
        "bleu": bleu_score.score,
        "length_ratio": bleu_score.sys_len / max(bleu_score.ref_len, 1),  # BLEU's tokens, hypothesis / reference
        "sentences": len(hypotheses),
        "chrf++_signature": chrf.get_signature().format(),
        "bleu_signature": bleu.get_signature().format(),
    }


def chrf_bleu(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """A seqio predict metric for translation tasks: corpus chrF++, BLEU and length ratio (sacrebleu)."""
    scores = translation_scores(predictions, targets)
    return {k: scores[k] for k in ("chrf++", "bleu", "length_ratio")}
