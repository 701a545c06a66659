"""Monolingual TFDS datasets by family name (mC4, Wikipedia, Wiki-40B), per lowres language code.

A family maps a lowres language (`pan_Guru`) to the real TFDS dataset name and split that hold it
(`c4/multilingual` split `pa`; `wikipedia/20230601.pa` split `train`) and reads it with
`seqio.TfdsDataSource`. Datasets must be prepared (`tfds build`) in the data directory first.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping

from lowres.data.languages import UnknownLanguageError, normalize_language
from lowres.errors import DataError, MissingFileError

__all__ = ["TfdsFamily", "TfdsNotPreparedError", "family", "register_family", "tfds_source", "tfds_split_info"]


class TfdsNotPreparedError(MissingFileError):
    """A TFDS dataset that is not installed or not prepared in the data directory."""


@dataclasses.dataclass(frozen=True)
class TfdsFamily:
    """How one multilingual TFDS dataset names its languages.

    `name` and `splits` are templates over `{code}`, the dataset's own language code; `codes`
    returns those codes (e.g. the builder's config list). `splits` maps seqio split -> TFDS split.
    """

    family: str
    name: str
    splits: Mapping[str, str]
    codes: Callable[[], tuple[str, ...]]
    text_key: str = "text"

    def __post_init__(self):
        object.__setattr__(self, "splits", tuple(dict(self.splits).items()))  # hashable: keys a cache

    def language_map(self) -> dict[str, str]:
        """lowres code -> dataset code; codes lowres cannot normalise are left out (logged once)."""
        return _language_map(self)

    def resolve(self, lang: str) -> tuple[str, dict[str, str]]:
        """(TFDS name, {seqio split: TFDS split}) of one language; unknown languages raise."""
        lang = normalize_language(lang)
        codes = self.language_map()
        if lang not in codes:
            raise UnknownLanguageError(lang, f"TFDS family {self.family!r} has no such language (it has {len(codes)})")
        code = codes[lang]
        return self.name.format(code=code), {k: v.format(code=code) for k, v in self.splits}


@functools.lru_cache(maxsize=None)
def _language_map(family: TfdsFamily) -> dict[str, str]:
    mapping: dict[str, str] = {}
    skipped = []
    for code in family.codes():
        try:
            lang = normalize_language(code)
        except UnknownLanguageError:
            skipped.append(code)
            continue
        mapping.setdefault(lang, code)  # the first spelling wins ("pa" before "pa-Latn")
    if skipped:
        logging.info("TFDS family %s: no lowres code for %s", family.family, skipped)
    return mapping


def _mc4_codes() -> tuple[str, ...]:
    from tensorflow_datasets.text import c4

    return tuple(code for code in c4.MC4_LANGUAGES if code != "und")


def _wikipedia_codes(date: str) -> Callable[[], tuple[str, ...]]:
    def codes() -> tuple[str, ...]:
        from tensorflow_datasets.text import wikipedia

        prefix = f"{date}."
        return tuple(c.name[len(prefix):] for c in wikipedia.Wikipedia.BUILDER_CONFIGS if c.name.startswith(prefix))

    return codes


def _wiki40b_codes() -> tuple[str, ...]:
    from tensorflow_datasets.text import wiki40b

    return tuple(c.name for c in wiki40b.Wiki40b.BUILDER_CONFIGS)


_FAMILIES: dict[str, TfdsFamily] = {}


def register_family(spec: TfdsFamily) -> TfdsFamily:
    """Adds (or replaces) a family, so `tfds:<family>` sources can use it."""
    _FAMILIES[spec.family] = spec
    return spec


# Real TFDS names. CC-100 is not in the TFDS catalogue; register a family for a local build of it.
register_family(TfdsFamily("mc4", "c4/multilingual", {"train": "{code}", "validation": "{code}-validation"},
                           _mc4_codes))
register_family(TfdsFamily("wikipedia", "wikipedia/20230601.{code}", {"train": "train"},
                           _wikipedia_codes("20230601")))
register_family(TfdsFamily("wiki40b", "wiki40b/{code}", {"train": "train", "validation": "validation",
                                                         "test": "test"}, _wiki40b_codes))


def family(name: str) -> TfdsFamily:
    if name not in _FAMILIES:
        raise DataError(f"unknown TFDS family {name!r}; registered: {sorted(_FAMILIES)} (add one with register_family)")
    return _FAMILIES[name]


def _builder(tfds_name: str, data_dir: str | None):
    """The prepared TFDS builder, or TfdsNotPreparedError saying how to prepare it."""
    import tensorflow_datasets as tfds

    where = data_dir or "the default TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)"
    hint = (f"run `tfds build {tfds_name.split(':')[0]} --data_dir={data_dir or '~/tensorflow_datasets'}` "
            "(or copy a prepared copy there), or pass the directory that holds it as tfds_data_dir")
    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except Exception as error:  # DatasetNotFoundError, config errors: all mean "not installed here"
        raise TfdsNotPreparedError(f"TFDS dataset {tfds_name!r} is not installed in {where}: {hint}") from error
    if not builder.is_prepared():
        raise TfdsNotPreparedError(f"TFDS dataset {tfds_name!r} is not prepared in {where}: {hint}")
    return builder


def tfds_split_info(family_name: str, lang: str, split: str, data_dir: str | None) -> tuple[int, int]:
    """(examples, bytes of serialized records) of one language's split, from the dataset info."""
    tfds_name, splits = family(family_name).resolve(lang)
    info = _builder(tfds_name, data_dir).info.splits[splits[split]]
    return int(info.num_examples), int(info.num_bytes)


def tfds_source(family_name: str, lang: str, data_dir: str | None = None):
    """A `seqio.TfdsDataSource` of one language (checked to be prepared) and the key of its text feature."""
    import seqio

    spec = family(family_name)
    tfds_name, splits = spec.resolve(lang)
    builder = _builder(tfds_name, data_dir)
    missing = [tfds_split for tfds_split in splits.values() if tfds_split not in builder.info.splits]
    available = {k: v for k, v in splits.items() if v in builder.info.splits}
    if not available:
        raise TfdsNotPreparedError(f"TFDS dataset {tfds_name!r} has none of the splits {missing}")
    return seqio.TfdsDataSource(tfds_name=tfds_name, tfds_data_dir=data_dir, splits=available), spec.text_key
