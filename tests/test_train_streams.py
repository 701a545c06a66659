"""The trainer drives staged schedules and learned LM/MT mixing, and evaluates held-out text while it trains."""

from __future__ import annotations

import json

import pytest

from lowres.data.streams.learned import LearnedMixingConfig
from lowres.data.streams.schedules import MixtureSchedule, Phase
from lowres.data.config import DataConfig
from lowres.data.text.sources import Documents
from lowres.data.vocab.vocabulary import VocabularyConfig
from lowres.evaluation.report import evaluate
from lowres.models.architecture import ModelConfig
from lowres.training.batch_sources import StreamConfig
from lowres.checkpoints.store import CheckpointConfig
from lowres.evaluation.during_training import EvalConfig
from lowres.training.optimizer import OptimizerConfig
from lowres.checkpoints.trained_model import load_trained_model
from lowres.jobs import train_job
from lowres.training.trainer import TrainConfig, TrainSettings

MIXTURES = ("builtin.causal_lm", "builtin.translate")  # LM and MT
DATA = DataConfig(languages=["eng", "yor"], objective="causal_lm", inputs_length=16, targets_length=16, batch_size=2,
                  shuffle_buffer_size=8, translation_rate=0.25)


def _run(model_dir, num_steps, stream, eval_config=None, **kw):
    settings = TrainSettings.from_gin(
        train=TrainConfig(num_steps=num_steps, log_every=2, report_mfu=False),
        data=DATA,
        model=ModelConfig(architecture="decoder_only", preset="tiny"),
        # constant learning rate: a run stopped at step k and continued matches an uninterrupted one
        optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=0, schedule="constant"),
        checkpoint=CheckpointConfig(save_interval_steps=2, max_to_keep=3, async_save=False),
        vocab=VocabularyConfig(kind="bytes", num_sentinels=10),
        stream=stream,
        **kw,
    )
    return train_job(model_dir, settings, eval_config, progress=False)


def _records(model_dir):
    return [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]


def test_learned_mixing_feeds_rewards_logs_rates_and_resumes_exactly(tmp_path, cache_dir):
    stream = StreamConfig(kind="learned", learned_tasks=MIXTURES)
    options = dict(learned=LearnedMixingConfig(measure_every=1, beta=0.5),
                   eval_config=EvalConfig(every_steps=2, max_documents=4, decode_examples=2))
    whole = _run(tmp_path / "whole", 4, stream, **options)
    _run(tmp_path / "split", 2, stream, **options)
    resumed = _run(tmp_path / "split", 4, stream, **options)
    assert resumed["start_step"] == 2
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"] if h["step"] > 2]
    assert resumed["eval_history"][-1] == whole["eval_history"][-1]

    records = [r for r in _records(tmp_path / "whole") if "loss" in r]
    rates = [[r[f"mixing_rate/{t}"] for t in MIXTURES] for r in records]
    assert all(abs(sum(pair) - 1) < 1e-6 for pair in rates)
    assert rates[0] != rates[-1], "the rewards never moved the rates"
    assert {"mixing_rates.png", "heldout_by_language.png"} <= {p.name for p in (tmp_path / "whole" / "plots").iterdir()}

    # held-out evaluation: loss per task and language, chrF++ of greedy translations, and bits per
    # byte equal to `lowres eval`'s
    final = whole["eval_history"][-1]
    assert [e["step"] for e in whole["eval_history"]] == [2, 4]
    expected = {"eval_task/builtin.eng_Latn.causal/loss", "eval_task/builtin.eng_Latn_to_yor_Latn.translate/loss",
                "eval/eng_Latn/loss", "eval/yor_Latn/loss", "eval/yor_Latn_to_eng_Latn/loss",
                "eval/eng_Latn_to_yor_Latn/chrf++", "eval/yor_Latn_to_eng_Latn/bleu"}
    assert expected <= set(final), expected - set(final)
    loaded = load_trained_model(tmp_path / "whole")
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    corpus = build_builtin_corpus(progress=False)
    docs = {lang: [line for line in corpus.mono_path(lang, "validation").read_text().splitlines() if line.strip()][:4]
            for lang in ("eng_Latn", "yor_Latn")}
    report = evaluate(loaded, Documents("validation", docs, None, "test"), batch_size=DATA.batch_size)
    for lang, row in report["languages"].items():
        assert final[f"eval/{lang}/bits_per_byte"] == pytest.approx(row["bits_per_byte"], rel=1e-5)


def test_schedule_switches_phase_and_a_changed_stream_is_refused_on_resume(tmp_path, cache_dir):
    schedule = MixtureSchedule(phases=[Phase(2, "builtin.causal_lm", ["eng"]), Phase(None, "builtin.causal_lm", ["yor"])])
    _run(tmp_path / "staged", 4, StreamConfig(kind="schedule"), schedule=schedule)
    assert [(r["step"], r["phase"]) for r in _records(tmp_path / "staged") if "phase" in r] == [(2, 0), (4, 1)]
    with pytest.raises(ValueError, match="batch stream"):
        _run(tmp_path / "staged", 6, StreamConfig())


def test_stream_and_eval_configs_name_the_bad_option():
    with pytest.raises(ValueError, match="StreamConfig.kind"):
        StreamConfig(kind="phases")
    with pytest.raises(ValueError, match="StreamConfig.learned_tasks"):
        StreamConfig(kind="learned", learned_tasks=["only_one"])
    with pytest.raises(ValueError, match="EvalConfig.every_steps"):
        EvalConfig(every_steps=-1)
