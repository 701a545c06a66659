"""The names lowres gives seqio tasks and mixtures, and the inverse that reads a language back out of one.

    <corpus>.<lang>.<denoiser>          one language under one denoiser   (builtin.pan_Guru.span_3_0p15_nlu)
    <corpus>.<src>_to_<tgt>.<objective> one translation direction          (builtin.eng_Latn_to_pan_Guru.translate)
    <corpus>.<objective>                a corpus' mixture                  (builtin.r_and_s, flores200.translate)

seqio names allow no '-', so pairs are spelled `<src>_to_<tgt>`.
"""

from __future__ import annotations

__all__ = ["mixture_name", "pair_task_name", "task_language", "task_name"]


def task_name(corpus: str, lang: str, denoiser: str) -> str:
    """`<corpus>.<lang>.<denoiser>`: one language's task under one denoiser."""
    return f"{corpus}.{lang}.{denoiser}"


def pair_task_name(corpus: str, src: str, tgt: str, objective: str) -> str:
    """`<corpus>.<src>_to_<tgt>.<objective>`: seqio task names cannot hold '-'."""
    return f"{corpus}.{src}_to_{tgt}.{objective}"


def mixture_name(corpus: str, objective: str) -> str:
    """`<corpus>.<objective>`: a corpus' mixture over its languages (or pairs) under one objective."""
    return f"{corpus}.{objective}"


def task_language(name: str) -> str:
    """The language (or `src_to_tgt` pair) of a `<corpus>.<lang>.<objective>` task name; "" otherwise."""
    parts = name.split(".")
    return parts[1] if len(parts) >= 3 else ""
