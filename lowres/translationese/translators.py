"""Pluggable sentence translators: a lowres checkpoint, a Hugging Face seq2seq directory, or any function.

A translator turns a batch of source sentences into target sentences, one for one and in order, and
describes itself for the output manifest. `translator_from_spec("lowres:DIR" | "hf:DIR" | "py:MOD:ATTR")`
builds one from a command-line string.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lowres.data.languages import normalize_language
from lowres.run_dir import require_run_dir
from lowres.errors import ConfigError, DataError, MissingFileError, UsageError

if TYPE_CHECKING:
    from lowres.checkpoints.trained_model import TrainedModel


@runtime_checkable
class Translator(Protocol):
    """Translates sentences; `name` goes into every document's `translator` provenance field."""

    name: str

    def translate(self, sentences: Sequence[str], src: str, tgt: str) -> list[str]:
        """One translation per sentence, in order (src/tgt are `xxx_Scrp` codes)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings recorded in the manifest; a resumed build must see the same ones."""
        ...

    def count_tokens(self, sentences: Sequence[str]) -> int:
        """Tokens of `sentences` in the translator's own tokenization (for tokens/s)."""
        ...


class FunctionTranslator:
    """Wraps `fn(sentences, src, tgt) -> list[str]`, e.g. a rule-based system or a test double."""

    def __init__(self, fn: Callable[[Sequence[str], str, str], list[str]], name: str | None = None):
        self.fn = fn
        self.name = name or f"py:{fn.__module__}:{fn.__qualname__}"

    def translate(self, sentences, src, tgt):
        return _checked(list(self.fn(list(sentences), src, tgt)), sentences, self.name)

    def describe(self):
        return {"kind": "function", "name": self.name}

    def count_tokens(self, sentences):
        return sum(len(s.split()) for s in sentences)


def _checked(outputs: list[str], sentences: Sequence[str], name: str) -> list[str]:
    if len(outputs) != len(sentences):
        raise DataError(f"translator {name} returned {len(outputs)} translations for {len(sentences)} sentences")
    return [" ".join(str(o).split()) for o in outputs]  # one line per sentence, whatever the model emits


class LowresTranslator:
    """Our own encoder-decoder (trained with the translation objective), decoded with beam search.

    Inputs are `[mode] <2tgt> sentence EOS`, as `lowres translate` builds them.
    """

    def __init__(self, model: TrainedModel, beam: int = 5, batch_size: int = 32, max_length: int | None = None,
                 mode_token: str | None = None, name: str = "lowres"):  # fmt: skip
        from lowres.inference.decoding import DecodeConfig
        from lowres.inference.generate import Generator

        self.vocabulary = model.vocabulary
        self.inputs_length = model.info.inputs_length
        max_length = max_length or model.info.targets_length
        config = DecodeConfig(method="beam" if beam > 1 else "greedy", max_length=max_length, beam_size=beam)
        self.generator = Generator(model, config, batch_size=batch_size)
        self.batch_size, self.mode_token, self.name = batch_size, mode_token, name
        self.settings = {"kind": "lowres", "name": name, "beam": beam, "max_length": max_length,
                         "step": model.step, "mode_token": mode_token}

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, step: int | None = None, **options) -> "LowresTranslator":
        from lowres.checkpoints.trained_model import load_trained_model

        model_dir = require_run_dir(model_dir, "--translator=lowres:")
        return cls(load_trained_model(model_dir, step), name=f"lowres:{model_dir.resolve().name}", **options)

    def translate(self, sentences, src, tgt):
        from lowres.inference.translate import translation_inputs

        del src  # the model reads the target tag only
        inputs = [translation_inputs(self.vocabulary, s, tgt, self.inputs_length, self.mode_token) for s in sentences]
        outputs = [self.vocabulary.decode(ids) for ids in self.generator.generate_all(inputs)]
        return _checked(outputs, sentences, self.name)

    def describe(self):
        return dict(self.settings)

    def count_tokens(self, sentences):
        return sum(len(self.vocabulary.encode(s)) for s in sentences)


# Hugging Face language-code conventions: NLLB uses FLORES codes (our own) as forced BOS tokens,
# M2M-100 ISO 639-1, IndicTrans2 FLORES codes as "src tgt" tags in front of the text, Marian none.
HF_CODE_STYLES = ("nllb", "m2m", "indictrans", "none")


def hf_language_code(lang: str, style: str) -> str | None:
    """The code a Hugging Face model family uses for `lang` (None: the model has no language tokens)."""
    lang = normalize_language(lang)
    if style in ("nllb", "indictrans"):
        return lang
    if style == "m2m":
        import pycountry

        iso3 = lang.partition("_")[0]
        record = pycountry.languages.get(alpha_3=iso3)
        return getattr(record, "alpha_2", None) or iso3
    if style == "none":
        return None
    raise ConfigError(f"unknown Hugging Face language-code style {style!r}; choose one of {HF_CODE_STYLES}")


class HuggingFaceTranslator:
    """A local seq2seq directory (NLLB, M2M-100, MarianMT, IndicTrans-style) through `transformers` + PyTorch."""

    def __init__(self, model_dir: str | Path, beam: int = 5, max_length: int = 256, code_style: str | None = None,
                 device: str | None = None, model=None, tokenizer=None):  # fmt: skip
        try:
            import torch
            import transformers
        except ImportError as error:
            raise ImportError("hf: translators need `transformers` and `torch` (pip install transformers torch)") from error
        self.torch = torch
        self.model_dir = str(model_dir)
        self.tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(self.model_dir)
        self.model = model or transformers.AutoModelForSeq2SeqLM.from_pretrained(self.model_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.beam, self.max_length = beam, max_length
        self.code_style = code_style or self._guess_style()
        self.name = f"hf:{Path(self.model_dir).name}"

    def _guess_style(self) -> str:
        if str(getattr(self.model.config, "model_type", "")).lower().startswith("indictrans"):
            return "indictrans"
        codes = getattr(self.tokenizer, "lang_code_to_id", None) or {}
        additional = set(getattr(self.tokenizer, "additional_special_tokens", None) or [])
        if "eng_Latn" in codes or "eng_Latn" in additional:
            return "nllb"
        if codes or hasattr(self.tokenizer, "get_lang_id"):
            return "m2m"
        return "none"

    def translate(self, sentences, src, tgt):
        src_code, tgt_code = hf_language_code(src, self.code_style), hf_language_code(tgt, self.code_style)
        options: dict[str, Any] = {"num_beams": self.beam, "max_new_tokens": self.max_length}
        texts = list(sentences)
        if self.code_style == "indictrans":  # IndicTrans2 reads its language tags from the text itself
            texts, src_code, tgt_code = [f"{src_code} {tgt_code} {s}" for s in texts], None, None
        if src_code is not None:
            self.tokenizer.src_lang = src_code
        if tgt_code is not None:
            if hasattr(self.tokenizer, "get_lang_id"):
                options["forced_bos_token_id"] = self.tokenizer.get_lang_id(tgt_code)
            else:
                options["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(tgt_code)
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with self.torch.no_grad():
            generated = self.model.generate(**{k: v.to(self.device) for k, v in batch.items()}, **options)
        outputs = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return _checked(outputs, sentences, self.name)

    def describe(self):
        return {"kind": "huggingface", "name": self.name, "model_dir": self.model_dir, "beam": self.beam,
                "max_length": self.max_length, "code_style": self.code_style}

    def count_tokens(self, sentences):
        return sum(len(ids) for ids in self.tokenizer(list(sentences))["input_ids"])


TRANSLATOR_SPECS = "lowres:MODEL_DIR, hf:MODEL_DIR or py:MODULE:ATTRIBUTE"


def translator_from_spec(spec: str, beam: int = 5, batch_size: int = 32, max_length: int | None = None) -> Translator:
    """A translator from `lowres:DIR`, `hf:DIR` or `py:MODULE:ATTR` (a Translator, a factory, or a function)."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise UsageError(f"--translator={spec!r}: use {TRANSLATOR_SPECS}")
    if kind == "lowres":
        return LowresTranslator.from_model_dir(arg, beam=beam, batch_size=batch_size, max_length=max_length)
    if kind == "hf":
        if not Path(arg).is_dir():
            raise MissingFileError(f"--translator={spec}: {arg} is not a directory (a saved Hugging Face model)")
        return HuggingFaceTranslator(arg, beam=beam, max_length=max_length or 256)
    if kind == "py":
        module, sep, attribute = arg.partition(":")
        if not sep:
            raise UsageError(f"--translator={spec!r}: py: needs MODULE:ATTRIBUTE")
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, type):
            target = target()
        if isinstance(target, Translator):
            return target
        return FunctionTranslator(target, name=spec)
    raise UsageError(f"--translator={spec!r}: unknown kind {kind!r}; use {TRANSLATOR_SPECS}")
