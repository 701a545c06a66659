"""Translation tasks in the built-in mixture (DataConfig.translation_rate), the run settings recorded in
lowres.json and used for bits-per-byte scoring, and `lowres generate` on a trained run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import seqio

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.mixing.rates import temperature_rates
from lowres.data.config import DataConfig
from lowres.data.tasks.builtin import register_builtin_mixture

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = {"inputs": 64, "targets": 64}
LANGS = ("pan_Guru", "yor_Latn", "eng_Latn")


@pytest.fixture(scope="module")
def mixture(corpus, vocabulary):
    return register_builtin_mixture(corpus, vocabulary, "r_and_s", 0.3, ["pan", "yor", "eng"], 32,
                                    translation_rate=0.25)


def test_translation_tasks_are_registered_both_ways_with_the_target_tag_first(mixture, corpus, vocabulary):
    assert mixture == "builtin.r_and_s.mixed"
    names = {t.name for t in seqio.get_mixture_or_task(mixture).tasks}
    pairs = [("eng_Latn", "pan_Guru"), ("pan_Guru", "eng_Latn"), ("eng_Latn", "yor_Latn"), ("yor_Latn", "eng_Latn")]
    assert {n for n in names if n.endswith(".translate")} == {f"builtin.{s}_to_{t}.translate" for s, t in pairs}
    for src, tgt in pairs[:2]:
        task = seqio.get_mixture_or_task(f"builtin.{src}_to_{tgt}.translate")
        examples = list(task.get_dataset(LENGTHS, "validation", shuffle=False).take(5).as_numpy_iterator())
        assert len(examples) == 5
        for ex in examples:
            assert ex["inputs"][0] == vocab_lib.reserved_id(vocabulary, f"<2{tgt}>")
            assert ex["inputs"][-1] == ex["targets"][-1] == vocabulary.eos_id
        other = tgt if src == "eng_Latn" else src
        english, native = corpus.parallel_path(other, "validation").read_text(encoding="utf-8").splitlines()[0].split("\t")
        source, target = (english, native) if src == "eng_Latn" else (native, english)
        assert vocabulary.decode(examples[0]["inputs"][1:-1].tolist()) == source
        assert vocabulary.decode(examples[0]["targets"][:-1].tolist()) == target
    # one registration for corpora and the built-in corpus (lowres.data.tasks.registration.register_translation_task)
    from lowres.text_metrics import chrf_bleu

    task = seqio.get_mixture_or_task("builtin.eng_Latn_to_pan_Guru.translate")
    assert [getattr(p, "__name__", None) for p in task.preprocessors] == ["translate", "append_eos_after_trim"]
    assert task.metric_fns == [chrf_bleu] and set(task.output_features) == {"inputs", "targets"}
    assert task.source.list_shards("train") == [str(corpus.parallel_path("pan_Guru", "train"))]


def test_translation_takes_its_rate_and_leaves_language_rates_alone(mixture, corpus):
    mix = seqio.get_mixture_or_task(mixture)
    share = {t.name: mix.get_rate(t) / mix.total_rate for t in mix.tasks}
    translation = {n: r for n, r in share.items() if n.endswith(".translate")}
    assert sum(translation.values()) == pytest.approx(0.25)
    sizes = {lang: corpus.parallel_path(lang, "train").stat().st_size for lang in ("pan_Guru", "yor_Latn")}
    expected = temperature_rates({f"builtin.{s}_to_{t}.translate": sizes[lang] for lang in sizes
                                  for s, t in (("eng_Latn", lang), (lang, "eng_Latn"))}, 0.3)
    assert translation == pytest.approx({name: 0.25 * rate for name, rate in expected.items()})
    mono_sizes = {row["lang"]: row["bytes"] for row in corpus.describe() if row["split"] == "train"}
    for lang, rate in temperature_rates({k: mono_sizes[k] for k in LANGS}, 0.3).items():
        got = sum(r for n, r in share.items() if n.startswith(f"builtin.{lang}."))
        assert got == pytest.approx(0.75 * rate)


def test_data_config_validates_translation_rate():
    assert DataConfig(translation_rate=0.5).translation_rate == 0.5
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"translation_rate=.*: must be in \[0.0, 1.0\)"):
            DataConfig(translation_rate=bad)
    # a declared corpus takes the rate as its translation share (prepare_data checks it has pairs)
    assert DataConfig(source="flores:/x", translation_rate=0.2).translation_rate == 0.2


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """Two steps of a tiny run on Punjabi with translation and no mode tokens (English joins for the pairs)."""
    import gin

    from lowres.models.architecture import ModelConfig
    from lowres.checkpoints.store import CheckpointConfig
    from lowres.jobs import train_job
    from lowres.training.trainer import TrainConfig, TrainSettings

    model_dir = tmp_path_factory.mktemp("mt") / "model"
    with gin.unlock_config():
        gin.bind_parameter("objective.mode_tokens", False)
    try:
        settings = TrainSettings.from_gin(
            train=TrainConfig(num_steps=2, log_every=1, report_mfu=False),
            data=DataConfig(languages=["pan"], inputs_length=32, targets_length=32, batch_size=4,
                            shuffle_buffer_size=16, translation_rate=0.5),
            model=ModelConfig(preset="tiny"), checkpoint=CheckpointConfig(save_interval_steps=2),
            vocab=vocab_lib.VocabularyConfig(vocab_size=600))
        train_job(model_dir, settings, progress=False)
    finally:
        gin.clear_config()
    return model_dir


def test_run_info_records_scoring_settings_and_english_joins(trained, monkeypatch):
    from lowres.data.text.sources import Documents
    from lowres.evaluation import bits_per_byte, report
    from lowres.checkpoints.trained_model import load_trained_model

    info = json.loads((trained / "lowres.json").read_text())
    assert info["mode_tokens"] is False and info["decoder_attention"] == "prefix"
    assert info["translation_rate"] == 0.5 and info["languages"] == ["pan_Guru", "eng_Latn"]
    loaded = load_trained_model(trained)
    vocab_lib.reserved_id(loaded.vocabulary, "<2eng_Latn>")  # raises if the tag is missing

    seen = {}
    original = bits_per_byte.model_bits_per_byte

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "model_bits_per_byte", spy)
    docs = Documents("validation", {"pan_Guru": ["ਸਾਰੇ ਮਨੁੱਖ"]}, None, "test")
    result = report.evaluate(loaded, docs, batch_size=2)
    assert seen["mode_token"] is None and seen["decoder_attention"] == "prefix"
    assert result["languages"]["pan_Guru"]["bits_per_byte"] > 0


def test_scoring_settings_default_for_old_runs_and_causal_features():
    from lowres.evaluation.bits_per_byte import feature_batches
    from lowres.models.architecture import architecture_for
    from lowres.run_dir import RunInfo

    old = RunInfo.from_dict({"model": {}, "vocabulary": "vocab/spm.model", "num_sentinels": 100,
                             "inputs_length": 8, "targets_length": 8})
    assert (old.scoring_mode_token, old.decoder_attention) == ("[S2S]", "prefix")
    new = RunInfo.from_dict({**old.to_dict(), "mode_tokens": False, "decoder_attention": "causal"})
    assert (new.scoring_mode_token, new.decoder_attention) == (None, "causal")
    examples = [([5, 1], [7, 8, 1])]
    decoder = architecture_for("decoder_only")
    prefix = next(iter(feature_batches(examples, decoder, 4, 5, 1)))
    causal = next(iter(feature_batches(examples, decoder, 4, 5, 1, decoder_attention="causal")))
    assert "decoder_causal_attention" in prefix and "decoder_causal_attention" not in causal
    np.testing.assert_array_equal(prefix["decoder_target_tokens"], causal["decoder_target_tokens"])


def test_generate_cli_prints_each_prompt_with_its_greedy_continuation(trained):
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator, mode_inputs
    from lowres.checkpoints.trained_model import load_trained_model

    prompts = ["ਸਾਰੇ ਮਨੁੱਖ", "All human beings"]
    result = subprocess.run(
        [sys.executable, "-m", "lowres.cli", "generate", f"--model_dir={trained}", *(f"--prompt={p}" for p in prompts),
         "--mode=none", "--max_length=6", "--batch_size=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = load_trained_model(trained)
    vocabulary = loaded.vocabulary
    generator = Generator(loaded, DecodeConfig("greedy", max_length=6), batch_size=2)
    expected = generator.generate_all([mode_inputs(vocabulary, p, None, 32) for p in prompts])
    # compared whole: a random model's output may hold control characters that splitlines() splits on
    assert result.stdout == "".join(f"{p}\t{vocabulary.decode(ids)}\n" for p, ids in zip(prompts, expected))


def test_task_source_reads_a_registered_tasks_raw_text(mixture, corpus):
    from lowres.data.text.sources import SourceError
    from lowres.evaluation.task_documents import parse_task_source, task_documents

    assert parse_task_source("task:builtin.pan_Guru.span_3_0p15_nlu:train") == ("builtin.pan_Guru.span_3_0p15_nlu",
                                                                               "train")
    documents = task_documents(*parse_task_source("task:builtin.pan_Guru.span_3_0p15_nlu"))
    lines = lambda split: corpus.mono_path("pan_Guru", split).read_text(encoding="utf-8").splitlines()  # noqa: E731
    assert documents.split == "validation" and documents.documents == {"pan_Guru": lines("validation")}
    assert documents.reference == {"pan_Guru": lines("train")}
    with pytest.raises(SourceError, match="no `text` feature"):
        task_documents("builtin.eng_Latn_to_pan_Guru.translate")
    with pytest.raises(SourceError, match="not a registered seqio task"):
        task_documents("builtin.xx.nothing")
    with pytest.raises(SourceError, match="task:NAME"):
        parse_task_source("task:")
