"""The trainer drives staged schedules and learned LM/MT mixing, and evaluates held-out text while it trains."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lowres.checkpoints.store import CheckpointConfig
from lowres.checkpoints.trained_model import load_trained_model
from lowres.data.config import DataConfig
from lowres.data.streams.learned import LearnedMixingConfig
from lowres.data.streams.schedules import MixtureSchedule, Phase
from lowres.data.text.sources import Documents
from lowres.data.vocab.vocabulary import VocabularyConfig
from lowres.evaluation.during_training import EvalConfig
from lowres.evaluation.report import evaluate
from lowres.jobs import train_job
from lowres.models.architecture import ModelConfig
from lowres.training import batch_sources
from lowres.training import trainer as trainer_module
from lowres.training.batch_sources import StreamConfig
from lowres.training.optimizer import OptimizerConfig
from lowres.training.trainer import TrainConfig, TrainSettings

MIXTURES = ("builtin.causal_lm", "builtin.translate")  # LM and MT
DATA = DataConfig(languages=["eng", "yor"], objective="causal_lm", inputs_length=16, targets_length=16, batch_size=2,
                  shuffle_buffer_size=8, translation_rate=0.25)


def _run(model_dir, num_steps, stream, eval_config=None, **kw):
    """A tiny decoder-only run; keyword settings (e.g. `train=`, `checkpoint=`) replace the defaults here."""
    defaults = {
        "train": TrainConfig(num_steps=num_steps, log_every=2, report_mfu=False),
        "data": DATA,
        "model": ModelConfig(architecture="decoder_only", preset="tiny"),
        # constant learning rate: a run stopped at step k and continued matches an uninterrupted one
        "optimizer": OptimizerConfig(learning_rate=1e-2, warmup_steps=0, schedule="constant"),
        "checkpoint": CheckpointConfig(save_interval_steps=2, max_to_keep=3, async_save=False),
        "vocab": VocabularyConfig(kind="bytes", num_sentinels=10),
        "stream": stream,
    }
    settings = TrainSettings.from_gin(**{**defaults, **kw})
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


def _spy_on_trained_batches(monkeypatch) -> dict[int, dict]:
    """Records the batch the trainer takes from its batch source at each step (step -> batch)."""
    seen: dict[int, dict] = {}
    real_open = trainer_module.open_batch_source

    def spying_open(*args, **kwargs):
        source = real_open(*args, **kwargs)
        real_next = source.next

        def next_batch(step):
            batch = real_next(step)
            seen[step] = {k: np.array(v) for k, v in batch.items()}
            return batch

        source.next = next_batch
        return source

    # the trainer calls the name it imported; patch the defining module too for any other caller
    monkeypatch.setattr(trainer_module, "open_batch_source", spying_open)
    monkeypatch.setattr(batch_sources, "open_batch_source", spying_open)
    return seen


def _segments_as_bytes(batch) -> list[bytes]:
    """The UTF-8 bytes of each packed example's targets (bytes vocabulary: byte b has id b + 3)."""
    out = []
    for tokens, segments in zip(batch["decoder_target_tokens"], batch["decoder_segment_ids"], strict=True):
        for segment in sorted(set(segments[segments > 0].tolist())):
            ids = tokens[segments == segment]
            out.append(bytes(int(t) - 3 for t in ids if 3 <= t < 259))
    return out


def test_schedule_switches_phase_and_a_changed_stream_is_refused_on_resume(tmp_path, cache_dir, corpus, monkeypatch):
    schedule = MixtureSchedule(phases=[Phase(2, "builtin.causal_lm", ["eng"]), Phase(None, "builtin.causal_lm", ["yor"])])
    seen = _spy_on_trained_batches(monkeypatch)
    _run(tmp_path / "staged", 4, StreamConfig(kind="schedule"), schedule=schedule)
    monkeypatch.undo()
    assert [(r["step"], r["phase"]) for r in _records(tmp_path / "staged") if "phase" in r] == [(2, 0), (4, 1)]

    # What the trainer actually trained on: steps 0-1 only English text, steps 2-3 only Yoruba. Every
    # example's bytes are a piece of its language's training file, and some piece of every step is
    # found nowhere in the other language's file (so the check can tell the languages apart).
    text = {lang: corpus.mono_path(lang, "train").read_bytes() for lang in ("eng_Latn", "yor_Latn")}
    assert sorted(seen) == [0, 1, 2, 3]
    for step, batch in seen.items():
        lang, other = ("eng_Latn", "yor_Latn") if step < 2 else ("yor_Latn", "eng_Latn")
        pieces = [piece for piece in _segments_as_bytes(batch) if piece]
        assert pieces, f"step {step}: an empty batch"
        strays = [piece for piece in pieces if piece not in text[lang]]
        assert not strays, f"step {step} (phase {int(step >= 2)}, {lang}) trained on text not from {lang}: {strays}"
        assert any(len(piece) >= 8 and piece not in text[other] for piece in pieces), (step, pieces)
    with pytest.raises(ValueError, match="batch stream"):
        _run(tmp_path / "staged", 6, StreamConfig())


EASY, HARD = "test_learned.repeating", "test_learned.random_bytes"


@pytest.fixture
def easy_and_hard_tasks():
    """Two causal-LM tasks over byte ids (id = byte + 3, as the run's bytes vocabulary): one repeats
    "ab" (its loss falls fast), the other is uniformly random bytes (nothing to learn beyond the unigram)."""
    import seqio
    import tensorflow as tf

    vocabulary = seqio.ByteVocabulary()
    features = {"inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
                "targets": seqio.Feature(vocabulary, add_eos=True)}
    rows = {EASY: np.tile(np.array([3 + ord("a"), 3 + ord("b")], np.int32), (64, 20)),
            HARD: np.random.default_rng(0).integers(3, 259, (64, 40)).astype(np.int32)}
    def dataset_fn_of(targets):
        def dataset_fn(split, shuffle_files, seed=None):
            return tf.data.Dataset.from_tensor_slices({"inputs": np.zeros((len(targets), 0), np.int32),
                                                       "targets": targets})

        return dataset_fn

    for name, targets in rows.items():
        seqio.TaskRegistry.remove(name)
        seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn_of(targets), splits=["train"]),
                               preprocessors=[seqio.preprocessors.append_eos_after_trim], output_features=features)
    yield EASY, HARD
    for name in rows:
        seqio.TaskRegistry.remove(name)


def _learned_mixing_run(model_dir, tasks, seed: int = 0, steps: int = 12):
    """Trains `steps` steps mixing `tasks` (a reward measured every step); returns the sampler's reward
    history from the final checkpoint and the last logged record."""
    from lowres.checkpoints.store import CheckpointStore

    learned = LearnedMixingConfig(measure_every=1, beta=0.8, rule="floor", epsilon=0.25, seed=seed)
    _run(model_dir, steps, StreamConfig(kind="learned", learned_tasks=tasks), learned=learned,
         data=dataclasses.replace(DATA, seed=seed),
         train=TrainConfig(num_steps=steps, log_every=1, report_mfu=False, seed=seed),
         checkpoint=CheckpointConfig(save_interval_steps=100, max_to_keep=1, async_save=False))
    store = CheckpointStore(model_dir / "checkpoints", read_only=True)
    history = store.metadata(steps)["batch_source"]["sampler"]["history"]
    store.close()
    return history, [r for r in _records(model_dir) if "loss" in r][-1]


def test_learned_mixing_moves_toward_the_task_whose_loss_falls_faster(tmp_path, cache_dir, easy_and_hard_tasks):
    """A real run mixing a repeating task and a random-bytes task: the rewards the trainer measures (loss
    before minus after a step, on a fresh batch of the task trained on) make the repeating task's reward
    average and sampling rate the larger. The floor rule keeps each task drawn at least 25% of the
    time, so both are measured whatever the first draws. (Checked over data/model/sampler seeds 0-7:
    the first reward of either task is large, as any task's first steps from random init are; the
    averages and rates still separate in every seed.)"""
    history, last = _learned_mixing_run(tmp_path / "run", easy_and_hard_tasks)
    assert [h["step"] for h in history] == list(range(12))  # one reward per step
    rewards = {task: [h["reward"] for h in history if h["task"] == task] for task in easy_and_hard_tasks}
    assert all(rewards.values()), f"a task was never measured: {rewards}"
    # the repeating task's loss falls faster (seeds 0-7: 2.4x to 40x in mean reward, 3x to 20x in the average)
    assert np.mean(rewards[EASY]) > 1.5 * np.mean(rewards[HARD]), rewards
    assert last[f"mixing_reward/{EASY}"] > 2 * max(last[f"mixing_reward/{HARD}"], 0.0), last
    # ... so its rate rose from the initial 0.5 (seeds 0-7: 0.62 to 0.73 after 12 steps)
    assert last[f"mixing_rate/{EASY}"] > 0.55 > last[f"mixing_rate/{HARD}"] >= 0.25 - 1e-9, last


def test_stream_and_eval_configs_name_the_bad_option():
    with pytest.raises(ValueError, match="StreamConfig.kind"):
        StreamConfig(kind="phases")
    with pytest.raises(ValueError, match="StreamConfig.learned_tasks"):
        StreamConfig(kind="learned", learned_tasks=["only_one"])
    with pytest.raises(ValueError, match="EvalConfig.every_steps"):
        EvalConfig(every_steps=-1)
