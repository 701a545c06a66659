"""Translationese: synthetic target-language corpora by machine translation, scored and filtered by a TinyLM.

`build` translates a monolingual source into JSONL documents with provenance, `score` writes each
document's perplexity under a small decoder-only LM beside them, `filter` keeps the most fluent part.
"""
