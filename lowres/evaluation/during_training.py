"""Evaluation during training, as a trainer hook: held-out teacher-forced loss per task and per
language, bits per byte, span infilling (lowres.evaluation.infilling), and the predict metrics
(chrF++, BLEU) of tasks that declare them.

The held-out examples are read once (a seeded, fixed slice of each task's held-out split) and the
documents once, so every evaluation of a run scores the same text and its curves are comparable.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import gin
import jax
import numpy as np
import seqio

from lowres.checkpoints.trained_model import TrainedModel
from lowres.data.config import DataConfig
from lowres.data.tasks.names import task_language
from lowres.config_fields import any_value, at_least, validated
from lowres.evaluation.bits_per_byte import model_bits_per_byte
from lowres.evaluation.infilling import infilling_denoiser, infilling_metrics, infilling_mode_token, model_infilling
from lowres.evaluation.seqio_metrics import evaluate_task
# Imported here, not where used: DecodeConfig is gin-configurable and must be registered before
# `lowres train` locks the parsed config.
from lowres.inference.decoding import DecodeConfig
from lowres.inference.generate import Generator
from lowres.models.architecture import Architecture, architecture_for
from lowres.training.hooks import StepInfo, TrainHook, TrainRun, every

Batch = dict[str, np.ndarray]


@gin.configurable
@validated(every_steps=at_least(0), split=any_value("a split name of the run's data"), batches_per_task=at_least(1),
           max_documents=at_least(1), decode_examples=at_least(0))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Every `every_steps` steps (0: never), score `batches_per_task` held-out batches of every task
    of the training mixture, and up to `max_documents` held-out documents per language: their bits per
    byte (`bits_per_byte`) and how well masked spans of them are filled in (`infilling`)."""

    every_steps: int = 0
    split: str = "validation"
    batches_per_task: int = 2
    bits_per_byte: bool = True
    # R-denoiser span infilling of the same documents, in the run's own layout (mode token, sentinels,
    # decoder attention): eval/infilling/{loss,bits_per_byte,span_bits_per_byte}, eval/<lang>/infilling_*.
    infilling: bool = False
    max_documents: int = 64
    # Tasks that declare predict metrics (translation: chrF++/BLEU) decode this many held-out examples
    # greedily and report their metrics; 0 turns decoding off.
    decode_examples: int = 16


def _has_split(task: seqio.Task, split: str) -> bool:
    try:
        return split in task.source.splits
    except (AttributeError, NotImplementedError):
        return True


def heldout_task_batches(
    mixture: str, data_config: DataConfig, config: EvalConfig, shard_info: seqio.ShardInfo,
    converter: seqio.FeatureConverter,
) -> tuple[dict[str, list[Batch]], list[str]]:
    """Host-local held-out batches per leaf task of `mixture`, and the tasks that have no such split.

    Every task yields exactly `batches_per_task` batches on every host (short splits are padded with
    rows of zero loss weight), so the hosts of a multi-host run run the same number of eval steps.
    """
    root = seqio.get_mixture_or_task(mixture)
    tasks = root.tasks if isinstance(root, seqio.Mixture) else [root]
    host_batch = data_config.host_batch_size(shard_info.num_shards)
    lengths = {"inputs": data_config.inputs_length, "targets": data_config.targets_length}
    batches, missing = {}, []
    for task in sorted(tasks, key=lambda t: t.name):
        if not _has_split(task, config.split):
            missing.append(task.name)
            continue
        dataset = seqio.get_dataset(
            task.name, task_feature_lengths=lengths, dataset_split=config.split, shuffle=False, num_epochs=1,
            seed=data_config.seed, shard_info=shard_info, use_cached=False,
            feature_converter=converter,
        )
        rows = list(itertools.islice(dataset.batch(host_batch).as_numpy_iterator(), config.batches_per_task))
        if not rows:
            missing.append(task.name)
            continue
        template = rows[0]
        rows = [{k: _pad_rows(v, host_batch) for k, v in b.items()} for b in rows]
        rows += [{k: np.zeros_like(_pad_rows(v, host_batch)) for k, v in template.items()}] * (
            config.batches_per_task - len(rows))
        batches[task.name] = rows
    return batches, missing


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    return np.pad(array, [(0, rows - len(array))] + [(0, 0)] * (array.ndim - 1)) if len(array) < rows else array


def heldout_documents(corpus, languages: Sequence[str], split: str, max_documents: int) -> dict[str, list[str]]:
    """Up to `max_documents` non-empty held-out documents per language (languages without the split are left out)."""
    from lowres.data.text import corpora
    from lowres.data.text.builtin_corpus import BuiltinCorpus

    documents = {}
    for lang in languages:
        if isinstance(corpus, BuiltinCorpus):
            if split not in ("train", "validation"):
                continue
            lines = corpus.mono_path(lang, split).read_text(encoding="utf-8").splitlines()
            texts = (line for line in lines if line.strip())
        else:
            if corpus.kind == "parallel" or split not in corpora.split_map(corpus):
                continue
            texts = (doc.text for doc in corpora.documents(corpus, lang, split) if doc.text.strip())
        docs = list(itertools.islice(texts, max_documents))
        if docs:
            documents[lang] = docs
    return documents


def evaluate_heldout(
    task_batches: Mapping[str, Sequence[Batch]],
    loss_sums: Callable[[Batch], tuple[float, float]],
    documents: Mapping[str, list[str]] | None = None,
    score_rows: Callable[[Batch], np.ndarray] | None = None,
    *,
    vocabulary=None,
    data_config: DataConfig | None = None,
    architecture: Architecture | None = None,
    mode_token: str | None = "[S2S]",
) -> dict[str, float]:
    """Held-out metrics: `eval/loss`, `eval/<lang>/loss` and `eval_task/<task>/loss` (nats per target
    token) and, with documents, `eval/<lang>/bits_per_byte` and their mean `eval/bits_per_byte`, scored
    like `lowres eval` does (after `mode_token`, with the data config's decoder attention)."""
    sums: dict[str, list[float]] = {}
    for task, batches in task_batches.items():
        nll, tokens = 0.0, 0.0
        for batch in batches:
            batch_nll, batch_tokens = loss_sums(batch)
            nll, tokens = nll + batch_nll, tokens + batch_tokens
        sums[task] = [nll, tokens]
    metrics: dict[str, float] = {}
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for task, (nll, tokens) in sums.items():
        if tokens:
            metrics[f"eval_task/{task}/loss"] = nll / tokens
        group = groups[task_language(task) or task]
        group[0], group[1] = group[0] + nll, group[1] + tokens
    for name, (nll, tokens) in sorted(groups.items()):
        if tokens:
            metrics[f"eval/{name}/loss"] = nll / tokens
    total_tokens = sum(tokens for _, tokens in sums.values())
    if total_tokens:
        metrics["eval/loss"] = sum(nll for nll, _ in sums.values()) / total_tokens
    if documents and score_rows is not None:
        scores = model_bits_per_byte(
            score_rows, vocabulary, dict(documents), data_config.inputs_length, data_config.targets_length,
            architecture=architecture, batch_size=data_config.batch_size, mode_token=mode_token,
            decoder_attention=data_config.decoder_attention,
        )
        for lang, row in scores.items():
            metrics[f"eval/{lang}/bits_per_byte"] = row["bits_per_byte"]
        metrics["eval/bits_per_byte"] = float(np.mean([row["bits_per_byte"] for row in scores.values()]))
    return metrics


def decoding_metrics(
    tasks: Sequence[str], model: TrainedModel, config: EvalConfig, batch_size: int
) -> dict[str, float]:
    """The predict metrics (chrF++, BLEU, ...) of every task in `tasks` that declares them, on greedy
    decodes of its first `decode_examples` held-out examples: `eval_task/<task>/<metric>`, and the
    same under `eval/<src_to_tgt>/<metric>`."""

    decoded = [seqio.get_mixture_or_task(name) for name in tasks]
    decoded = [task for task in decoded if task.predict_metric_fns and _has_split(task, config.split)]
    if not decoded or not config.decode_examples:
        return {}
    info = model.info
    lengths = {"inputs": info.inputs_length, "targets": info.targets_length}
    generator = Generator(model, DecodeConfig("greedy", max_length=info.targets_length), batch_size=batch_size)
    metrics = {}
    for task in decoded:
        scores = evaluate_task(task, generator.generate, None, config.split, lengths, config.decode_examples, batch_size)
        for key, value in scores.items():
            metrics[f"eval_task/{task.name}/{key}"] = value
            metrics[f"eval/{task_language(task.name) or task.name}/{key}"] = value
    return metrics


class HeldoutEvalHook(TrainHook):
    """Runs `EvalConfig`'s held-out evaluation every `every_steps` steps and at the last step, with one
    console line per evaluation. The held-out text is read at the first evaluation."""

    name = "eval"

    def __init__(self, config: EvalConfig):
        self.config = config
        self.train_run: TrainRun | None = None
        self.batches: dict[str, list[Batch]] | None = None
        self.documents: dict[str, list[str]] = {}

    def start(self, run: TrainRun) -> None:
        self.train_run = run
        if self.config.infilling:  # lengths or sentinels too few: say so now, not at the first evaluation
            infilling_denoiser(infilling_mode_token(run.info.mode_tokens), run.data_config.inputs_length,
                               run.data_config.targets_length, run.data.vocabulary)  # fmt: skip

    def due(self, step: int, last_step: int) -> bool:
        return every(self.config.every_steps, step, last_step)

    def _read_heldout(self) -> None:
        run, config = self.train_run, self.config
        self.batches, missing = heldout_task_batches(run.data.mixture, run.data_config, config, run.shard_info,
                                                     run.converter)  # fmt: skip
        if config.bits_per_byte or config.infilling:
            self.documents = heldout_documents(run.data.corpus, run.data.languages, config.split, config.max_documents)
        if missing:
            run.print(f"eval: {len(missing)} task(s) have no {config.split!r} split and are not scored: "
                      f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    def run(self, info: StepInfo) -> dict[str, float]:
        run = self.train_run
        if self.batches is None:
            self._read_heldout()
        row_nll = lambda batch: run.row_nll(info.params, batch)  # noqa: E731
        data_config, architecture = run.data_config, architecture_for(run.model_config)
        scores = evaluate_heldout(
            self.batches, lambda batch: run.loss_sums(info.params, batch),
            self.documents if self.config.bits_per_byte else None, row_nll, vocabulary=run.data.vocabulary,
            data_config=data_config, architecture=architecture, mode_token=run.info.scoring_mode_token,
        )  # fmt: skip
        if self.config.infilling and self.documents:
            scores.update(infilling_metrics(model_infilling(
                row_nll, run.data.vocabulary, self.documents, data_config.inputs_length, data_config.targets_length,
                architecture, data_config.batch_size, infilling_mode_token(run.info.mode_tokens),
                data_config.decoder_attention,
            )))  # fmt: skip
        if self.config.decode_examples and jax.process_count() == 1:
            model = TrainedModel(run.info, run.model_config, run.data.vocabulary, run.graphdef, run.rest, info.params,
                                 info.step, run.model_dir)  # fmt: skip
            scores.update(decoding_metrics(list(self.batches), model, self.config, run.data_config.batch_size))
        bpb = f", bits/byte {scores['eval/bits_per_byte']:.3f}" if "eval/bits_per_byte" in scores else ""
        if "eval/infilling/bits_per_byte" in scores:
            bpb += f", infilling bits/byte {scores['eval/infilling/bits_per_byte']:.3f}"
        run.print(f"eval step {info.step}: held-out loss {scores.get('eval/loss', float('nan')):.4f}{bpb}")
        return scores
