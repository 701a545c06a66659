"""TFDS families: real names per language, a tiny TFDS dataset built here, clear errors when not prepared."""

from __future__ import annotations

import pytest

tfds = pytest.importorskip("tensorflow_datasets")
import seqio  # noqa: E402

from lowres.data.tasks.corpus_tasks import register_corpus  # noqa: E402
from lowres.data.text import corpora  # noqa: E402
from lowres.data.text import tfds_sources
from lowres.data.languages import UnknownLanguageError  # noqa: E402
from lowres.data.text.tfds_sources import TfdsFamily, TfdsNotPreparedError  # noqa: E402
from lowres.errors import DataError, MissingFileError  # noqa: E402

DOCS = {"pa": ["ਪਹਿਲਾ ਲੇਖ", "ਦੂਜਾ ਲੇਖ", "ਤੀਜਾ ਲੇਖ"], "hi": ["पहला लेख", "दूसरा लेख"]}


class LowresTinyWiki(tfds.core.GeneratorBasedBuilder):
    """A two-language, Wikipedia-shaped TFDS dataset (config per language, a `text` feature)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=code) for code in DOCS]

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text(), "title": tfds.features.Text()})
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for index, text in enumerate(DOCS[self.builder_config.name]):
            yield index, {"text": text, "title": f"t{index}"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for code in DOCS:
        LowresTinyWiki(config=code, data_dir=str(root)).download_and_prepare()
    tfds_sources.register_family(
        TfdsFamily("tinywiki", "lowres_tiny_wiki/{code}:1.0.0", {"train": "train"}, lambda: tuple(DOCS))
    )
    return str(root)


def test_real_names_for_mc4_and_wikipedia():
    assert tfds_sources.family("mc4").resolve("pan_Guru") == ("c4/multilingual", {"train": "pa",
                                                                                  "validation": "pa-validation"})
    assert tfds_sources.family("wikipedia").resolve("pa-IN") == ("wikipedia/20230601.pa", {"train": "train"})
    assert tfds_sources.family("wiki40b").resolve("hin_Deva")[0] == "wiki40b/hi"
    assert len(tfds_sources.family("mc4").language_map()) > 100
    with pytest.raises(UnknownLanguageError, match="TFDS family 'wiki40b' has no such language"):
        tfds_sources.family("wiki40b").resolve("pan_Guru")
    with pytest.raises(ValueError, match="unknown TFDS family 'cc99'"):
        tfds_sources.family("cc99")


def test_tiny_tfds_corpus_reads_registers_and_counts(data_dir):
    spec = corpora.CorpusSpec("tiny_tfds", "tfds:tinywiki", objective="causal_lm", tfds_data_dir=data_dir)
    assert corpora.languages(spec) == ["hin_Deva", "pan_Guru"]
    assert [doc.text for doc in corpora.documents(spec, "pan_Guru")] == DOCS["pa"]
    assert {doc.lang for doc in corpora.documents(spec, "hin_Deva")} == {"hin_Deva"}
    stats = corpora.corpus_stats(spec)
    assert stats.documents == {"hin_Deva": 2, "pan_Guru": 3} and not stats.exact_bytes
    registered = register_corpus(spec, seqio.ByteVocabulary())
    task = seqio.get_mixture_or_task("tiny_tfds.pan_Guru.causal")
    assert isinstance(task.source, seqio.TfdsDataSource)
    targets = [ex["targets"] for ex in task.get_dataset({"inputs": 8, "targets": 512}, "train", shuffle=False)
               .as_numpy_iterator()]
    decoded = seqio.ByteVocabulary().decode(list(targets[0][:-1]))
    assert all(doc in decoded for doc in DOCS["pa"])
    assert set(registered.rates) == {"hin_Deva", "pan_Guru"}


def test_not_prepared_name_says_what_to_do(tmp_path, data_dir):
    with pytest.raises(TfdsNotPreparedError, match=r"'c4/multilingual' is not prepared in .*tfds build c4/multilingual"):
        tfds_sources.tfds_source("mc4", "pa", str(tmp_path))
    tfds_sources.register_family(TfdsFamily("missing", "no_such_dataset_xyz/{code}", {"train": "train"}, lambda: ("pa",)))
    with pytest.raises(TfdsNotPreparedError, match="'no_such_dataset_xyz/pa' is not installed"):
        corpora.corpus_stats(corpora.CorpusSpec("m", "tfds:missing", tfds_data_dir=str(tmp_path)))


def test_tfds_errors_are_lowres_errors():
    assert issubclass(TfdsNotPreparedError, MissingFileError) and issubclass(TfdsNotPreparedError, FileNotFoundError)
    with pytest.raises(DataError, match="unknown TFDS family 'cc99'"):
        tfds_sources.family("cc99")
    with pytest.raises(DataError, match="TFDS family 'wiki40b' has no such language"):
        tfds_sources.family("wiki40b").resolve("pan_Guru")
