"""The `lowres eval` report: per-language bits per byte and NLL beside a unigram byte baseline,
translation quality on FLORES-layout data, for one model or several side by side.

JSON schema (one model; `lowres eval` writes a list of these under "models" when given several):
    {
      "model_dir": str, "step": int, "split": str, "source": str, "data": str,
      "baseline": str, "baseline_fit": "train split" | "evaluated text (in-sample)",
      "mean_bits_per_byte": float,
      "languages": {lang: {"bits_per_byte", "unigram_bits_per_byte", "nll_per_token", "nll_per_word" (nats),
                           "tokens", "bytes", "words", "documents"}},
      "translation": {"src-tgt": {"chrf++", "bleu", "length_ratio", "sentences",
                                  "chrf++_signature", "bleu_signature"}}      # only with --translate
    }
A multi-model file is {"models": [report, ...]}.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lowres.data.text.sources import Documents
from lowres.figures import save_png
from lowres.checkpoints.trained_model import TrainedModel, load_trained_model
from lowres.errors import DataError
from lowres.files import write_atomic, write_json
from lowres.evaluation.bits_per_byte import model_bits_per_byte, unigram_byte_bits_per_byte
from lowres.inference.scoring import jitted_scorer


def evaluate(model: TrainedModel, documents: Documents, batch_size: int = 32) -> dict[str, Any]:
    """Scores every language of `documents` with a restored model, with the mode token and decoder
    attention the run trained with.

    The unigram baseline is fitted on the source's training split when it has one (builtin), and
    otherwise on the evaluated text itself, which flatters the baseline; `baseline_fit` says which.
    """
    info = model.info
    scores = model_bits_per_byte(
        jitted_scorer(model.graphdef, model.params, model.rest),
        model.vocabulary,
        documents.documents,
        info.inputs_length,
        info.targets_length,
        architecture=model.architecture,
        batch_size=batch_size,
        progress=lambda langs: tqdm(langs, desc="languages", unit="lang", leave=False),
        mode_token=info.scoring_mode_token,
        decoder_attention=info.decoder_attention,
    )
    reference = documents.reference or documents.documents
    for lang, row in scores.items():
        row["unigram_bits_per_byte"] = unigram_byte_bits_per_byte(reference[lang], documents.documents[lang])
    mean = sum(r["bits_per_byte"] for r in scores.values()) / len(scores)
    return {
        "step": model.step,
        "split": documents.split,
        "source": documents.description,
        "baseline": "unigram byte model, add-one smoothed",
        "baseline_fit": "train split" if documents.reference else "evaluated text (in-sample)",
        "mean_bits_per_byte": mean,
        "languages": scores,
    }


def _name(result: dict[str, Any]) -> str:
    return Path(result.get("model_dir", "model")).name or str(result.get("model_dir"))


def table(results: dict[str, Any]) -> str:
    """Markdown table: one row per language, model vs baseline bits per byte (and translation scores)."""
    lines = [
        f"step {results['step']} on {results['source']}",
        "| language | documents | bytes | tokens | bits/byte | unigram bits/byte | NLL/token | NLL/word |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, row in sorted(results["languages"].items()):
        lines.append(
            f"| {lang} | {row['documents']} | {row['bytes']} | {row['tokens']} | "
            f"{row['bits_per_byte']:.3f} | {row['unigram_bits_per_byte']:.3f} | "
            f"{row.get('nll_per_token', float('nan')):.3f} | {row.get('nll_per_word', float('nan')):.3f} |"
        )
    lines.append(f"mean bits/byte: {results['mean_bits_per_byte']:.3f}")
    if results.get("split") == "train":
        lines.append("note: scored on the train split, the text the model trained on: an in-sample score")
    if results.get("translation"):
        lines += ["", "| direction | sentences | chrF++ | BLEU | length ratio |", "|---|---:|---:|---:|---:|"]
        for direction, row in sorted(results["translation"].items()):
            lines.append(f"| {direction} | {row['sentences']} | {row['chrf++']:.2f} | {row['bleu']:.2f} | "
                         f"{row['length_ratio']:.3f} |")
        first = next(iter(results["translation"].values()))
        lines.append(f"sacrebleu: chrF++ {first['chrf++_signature']}; BLEU {first['bleu_signature']}")
    return "\n".join(lines)


def comparison_table(reports: Sequence[dict[str, Any]]) -> str:
    """Several models side by side: bits per byte per language, then chrF++ per direction."""
    names = [_name(r) for r in reports]
    langs = sorted(set().union(*(r["languages"] for r in reports)))
    lines = ["| language | " + " | ".join(f"{n} bits/byte" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for lang in langs:
        cells = [f"{r['languages'][lang]['bits_per_byte']:.3f}" if lang in r["languages"] else "-" for r in reports]
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    lines.append("| mean | " + " | ".join(f"{r['mean_bits_per_byte']:.3f}" for r in reports) + " |")
    directions = sorted(set().union(*(r.get("translation", {}) for r in reports)))
    if directions:
        lines += ["", "| direction | " + " | ".join(f"{n} chrF++ / BLEU" for n in names) + " |",
                  "|---|" + "---:|" * len(names)]
        for d in directions:
            cells = [f"{r['translation'][d]['chrf++']:.2f} / {r['translation'][d]['bleu']:.2f}"
                     if d in r.get("translation", {}) else "-" for r in reports]
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(reports: Sequence[dict[str, Any]], path: Path) -> Path:
    """PNG: bits per byte per language (one bar per model, the unigram baseline hatched), and chrF++ per
    translation direction when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = sorted(set().union(*(r["languages"] for r in reports)))
    directions = sorted(set().union(*(r.get("translation", {}) for r in reports)))
    panels = 2 if directions else 1
    fig, axes = plt.subplots(panels, 1, figsize=(max(6, 0.8 * len(langs) + 2), 4 * panels), squeeze=False)
    width = 0.8 / (len(reports) + 1)
    x = np.arange(len(langs))
    ax = axes[0][0]
    for i, r in enumerate(reports):
        ax.bar(x + i * width, [r["languages"].get(l, {}).get("bits_per_byte", np.nan) for l in langs], width,
               label=_name(r))
    ax.bar(x + len(reports) * width, [reports[0]["languages"].get(l, {}).get("unigram_bits_per_byte", np.nan)
                                      for l in langs], width, label="unigram bytes", hatch="//", fill=False)
    ax.set_xticks(x + 0.4 - width / 2, langs, rotation=45, ha="right")
    ax.set_ylabel("bits per byte (lower is better)")
    ax.legend()
    if directions:
        ax = axes[1][0]
        x = np.arange(len(directions))
        for i, r in enumerate(reports):
            ax.bar(x + i * width, [r.get("translation", {}).get(d, {}).get("chrf++", np.nan) for d in directions],
                   width, label=_name(r))
        ax.set_xticks(x + 0.4 - width, directions, rotation=30, ha="right")
        ax.set_ylabel("chrF++ (higher is better)")
        ax.legend()
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def write_outputs(reports: Sequence[dict[str, Any]], output: Path) -> tuple[str, list[Path]]:
    """Writes OUTPUT (JSON), OUTPUT's .md table and .png chart atomically; returns the table and the paths."""
    output.parent.mkdir(parents=True, exist_ok=True)
    data = reports[0] if len(reports) == 1 else {"models": list(reports)}
    markdown = table(reports[0]) if len(reports) == 1 else comparison_table(reports)
    paths = []
    paths.append(write_json(output, data))
    paths.append(write_atomic(output.with_suffix(".md"), markdown + "\n"))
    paths.append(bar_chart(reports, output.with_suffix(".png")))
    return markdown, paths


def translator(model: TrainedModel, beam: int, batch_size: int, max_length: int | None = None):
    """A `translate(sentences, target_lang) -> outputs` function over a restored model (greedy or beam)."""
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator
    from lowres.inference.translate import translate_lines

    config = DecodeConfig("beam" if beam > 1 else "greedy", max_length or model.info.targets_length,
                          beam_size=beam)
    generator = Generator(model, config, batch_size=batch_size)
    inputs_length = model.info.inputs_length

    def translate(sentences: Sequence[str], target: str) -> list[str]:
        outputs: list[str] = []
        for start in tqdm(range(0, len(sentences), batch_size), desc=f"translate ->{target}", unit="batch",
                          leave=False):
            batch = list(sentences[start : start + batch_size])
            outputs += translate_lines(generator, model.vocabulary, batch, target, inputs_length)
        return outputs

    return translate


def _task_documents(data: str, split: str | None, langs: Sequence[str] | None, model_dir: Path):
    """`task:NAME[:split]` documents (registering the first run's tasks if needed), `--langs` applied."""
    import dataclasses

    from lowres.data.languages import normalize_language
    from lowres.data.text.sources import SourceError
    from lowres.evaluation.task_documents import parse_task_source, task_documents

    name, task_split = parse_task_source(data)
    if split and task_split and split != task_split:
        raise SourceError(f"--data={data} names split {task_split!r} but --split={split}; give one of them")
    documents = task_documents(name, split or task_split, model_dir)
    if not langs:
        return documents
    wanted = [normalize_language(code) for code in langs]
    missing = sorted(set(wanted) - set(documents.documents))
    if missing:
        raise SourceError(f"task:{name} holds no text in {missing}; it has {sorted(documents.documents)}")
    keep = lambda d: {k: v for k, v in d.items() if k in wanted}  # noqa: E731
    return dataclasses.replace(documents, documents=keep(documents.documents),
                               reference=keep(documents.reference) if documents.reference else None)


def run_eval(
    model_dirs: Sequence[Path], data: str, split: str | None = None, langs: Sequence[str] | None = None,
    lang: str | None = None, step: int | None = None, batch_size: int = 32, translate: str | None = None,
    translate_limit: int | None = None, beam: int = 1,
) -> list[dict[str, Any]]:  # fmt: skip
    """One report per model directory on the same documents (and translation directions)."""
    from lowres.data.text.sources import SourceRef, load_documents
    from lowres.evaluation.translation import evaluate_directions, parse_directions

    directions = parse_directions(translate) if translate else []
    ref = SourceRef.parse(data)
    if directions and ref.kind != "flores":
        raise DataError("--translate needs --data=flores:DIR (a FLORES-layout directory with both languages)")
    if ref.kind == "task":
        documents = _task_documents(data, split, langs, Path(model_dirs[0]))
    else:
        documents = load_documents(data, split, langs, lang)
    reports = []
    for model_dir in model_dirs:
        model = load_trained_model(Path(model_dir), step)
        result = {"model_dir": str(model_dir), **evaluate(model, documents, batch_size=batch_size), "data": data}
        if directions:
            result["translation"] = evaluate_directions(
                translator(model, beam, batch_size), Path(ref.location), documents.split, directions, translate_limit
            )
        reports.append(result)
    return reports
