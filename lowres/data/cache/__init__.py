"""Tokenized corpora on disk: read, cleaned and tokenized once per vocabulary, then memory-mapped.

    from lowres.data.cache import build_token_cache
    cache = build_token_cache(spec, "runs/x/vocab/spm.model", shard_index=host, num_shards=hosts)
    arrays = cache.mono("pan_Guru", "train")        # TokenArrays: tokens (np.memmap), offsets (int64)
    window = arrays.tokens[i : i + 512]

Modules: `sources` (what a cache holds: entries of a CacheSource / CorpusSpec), `tokenizer`
(TensorFlow-free encoding identical to vocabulary.encode), `store` (format, checks, reader),
`work` (the units of work every runner shares), `build` (the build: keying, resuming, local
process pool, progress) and `beam` (the same build on Apache Beam). This wing sits between
vocab/ and tasks/: it imports text/, vocab/ and the ground floor, nothing above.
"""

from lowres.data.cache.build import (
    BuildReport,
    build_token_cache,
    default_cache_root,
    token_cache_dir,
)
from lowres.data.cache.sources import (
    CacheSource,
    CorpusSource,
    Entry,
    mono_entry,
    pair_entry,
)
from lowres.data.cache.store import TokenArrays, TokenCache, open_token_cache
from lowres.data.cache.tokenizer import TokenizerSpec, tokenizer_spec

__all__ = [
    "BuildReport",
    "CacheSource",
    "CorpusSource",
    "Entry",
    "TokenArrays",
    "TokenCache",
    "TokenizerSpec",
    "build_token_cache",
    "default_cache_root",
    "mono_entry",
    "open_token_cache",
    "pair_entry",
    "token_cache_dir",
    "tokenizer_spec",
]
