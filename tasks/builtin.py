"""SeqIO tasks and mixtures of lowres' built-in 20-language corpus, for anyone who uses plain seqio.

From the repository root::

    python -c "import tasks.builtin, seqio; print(seqio.MixtureRegistry.names())"

Importing this module builds the built-in corpus (once, cached) and registers, with the default
SentencePiece vocabulary (`lowres.data.tasks.builtin.default_vocabulary`: trained once on the corpus
and cached under $LOWRES_CACHE_DIR, else ~/.cache/lowres):

* `builtin.<lang>.<denoiser>`: every language under every denoiser of every objective preset
  (lowres.data.tasks.objectives.OBJECTIVES);
* `builtin.<objective>`: one mixture per preset, languages weighted by temperature sampling
  (alpha 0.3) over their bytes;
* `builtin.eng_Latn_to_<lang>.translate`, `builtin.<lang>_to_eng_Latn.translate` for every
  non-English language, and their mixture `builtin.translate`.

Then, e.g.::

    seqio.get_mixture_or_task("builtin.r_and_s").get_dataset({"inputs": 128, "targets": 128}, "train")

`lowres train` does not import this module: a run registers what it trains on itself (with the
vocabulary it stores in its run directory) through lowres.data.tasks.prepare.
"""

from __future__ import annotations

from lowres.data.tasks.builtin import TRANSLATION_MIXTURE, default_vocabulary, register_builtin_mixture
from lowres.data.tasks.objectives import OBJECTIVES
from lowres.data.text.builtin_corpus import build_builtin_corpus

__all__ = ["CORPUS", "MIXTURES", "VOCABULARY"]

CORPUS = build_builtin_corpus(progress=False)
VOCABULARY = default_vocabulary(CORPUS)
MIXTURES: tuple[str, ...] = (
    *(register_builtin_mixture(CORPUS, VOCABULARY, objective) for objective in OBJECTIVES),
    TRANSLATION_MIXTURE,
)
