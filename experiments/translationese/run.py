"""The translationese recipe (issue #8, METHODS.md section 2) end to end on CPU, from one command.

    python experiments/translationese/run.py --output runs/translationese

Stages (each skipped when its marker `OUTPUT/stages/<stage>.json` exists, so a killed run continues;
the training and translation stages also resume inside themselves):
  data       FLORES dev eng/pan split by document into MT/LM training lines and a held-out Punjabi
             set (never trained on); clean Punjabi = FLORES train part + built-in pan + UDHR pan;
             English source = UDHR eng + Tatoeba English sides, grouped into documents
  vocab      one SentencePiece vocabulary shared by every model (tags eng_Latn and pan_Guru)
  mt         an eng->pan encoder-decoder trained on the parallel lines (`lowres train`, mt.gin)
  translate  the English documents into Punjabi (`lowres translationese build`)
  tinylm     a TinyLM on the clean Punjabi (`lowres train`, tinylm.gin)
  filter     TinyLM perplexities and the lowest-perplexity `keep_percent`% (`translationese score|filter`)
  pretrain   decoder-only LMs on clean, unfiltered synthetic and filtered synthetic text (lm.gin)
  extend     each synthetic model continued on clean text ~10% the synthetic size (InitConfig.checkpoint)
  eval       held-out clean Punjabi bits per byte of every model (`lowres eval`)
  report     results.json, results.md and results.png in --results_dir
Shared data is read from its path; only derived files go under --output.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import gin  # noqa: E402

from lowres.files import write_atomic, write_json  # noqa: E402

STAGES = ("data", "vocab", "mt", "translate", "tinylm", "filter", "pretrain", "extend", "eval", "report")
# (model name, training text, initial checkpoint) of every compared model, in table order.
MODELS = (
    ("clean", "clean", None),
    ("synthetic", "synthetic", None),
    ("synthetic+clean10", "extension", "synthetic"),
    ("filtered", "filtered", None),
    ("filtered+clean10", "extension", "filtered"),
)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """Data paths (relative to the repository root) and the recipe's sizes; bound in recipe.gin."""

    flores_dir: str = "../shared/data/flores200/dev"
    udhr_dir: str = "../shared/data/udhr/declaration"
    tatoeba_dir: str = "../shared/data/tatoeba"
    heldout_lines: int = 200  # at least this many FLORES lines (whole documents, from the end) held out
    english_sentences: int = 1200  # Tatoeba English sentences translated (after the UDHR declaration)
    sentences_per_document: int = 6  # Tatoeba sentences grouped into one source document
    vocab_size: int = 2000
    mt_steps: int = 400
    tinylm_steps: int = 200
    lm_steps: int = 300
    extend_steps: int = 60
    extend_fraction: float = 0.1  # clean extension data: this fraction of the synthetic corpus' bytes
    keep_percent: float = 50.0
    beam: int = 1
    translate_batch_size: int = 64
    max_sentence_chars: int = 200

    def path(self, name: str) -> Path:
        value = Path(getattr(self, name))
        return value if value.is_absolute() else (REPO / value).resolve()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- data


def heldout_split(urls: Sequence[str], min_heldout: int) -> tuple[list[int], list[int]]:
    """Line indices (train, held out): whole documents (runs of one URL) from the end until >= min_heldout lines."""
    if not 0 < min_heldout < len(urls):
        raise ValueError(f"heldout_lines={min_heldout} must lie in (0, {len(urls)})")
    cut = len(urls) - min_heldout
    while 0 < cut and urls[cut - 1] == urls[cut]:
        cut -= 1
    if cut == 0:
        raise ValueError("the held-out documents would cover every line; lower heldout_lines")
    return list(range(cut)), list(range(cut, len(urls)))


def documents_by_url(lines: Sequence[str], urls: Sequence[str], indices: Sequence[int]) -> list[str]:
    """The lines at `indices` joined into one text per run of equal URLs (FLORES documents)."""
    docs: list[list[str]] = []
    previous = None
    for i in indices:
        if not docs or urls[i] != previous:
            docs.append([])
        docs[-1].append(lines[i])
        previous = urls[i]
    return [" ".join(d) for d in docs]


def _flores(config: RecipeConfig) -> tuple[list[str], list[str], list[str]]:
    directory = config.path("flores_dir")
    eng = (directory / "eng.dev").read_text(encoding="utf-8").splitlines()
    pan = (directory / "pan.dev").read_text(encoding="utf-8").splitlines()
    with open(directory.parent / "metadata_dev.tsv", encoding="utf-8", newline="") as handle:
        urls = [row[0] for row in list(csv.reader(handle, delimiter="\t"))[1:]]
    if not len(eng) == len(pan) == len(urls):
        raise ValueError(f"{directory}: eng.dev ({len(eng)}), pan.dev ({len(pan)}) and metadata ({len(urls)}) differ in lines")
    return eng, pan, urls


def _udhr_sections(path: Path) -> list[str]:
    from lowres.data.text.readers import read_udhr

    return [" ".join(doc.text.split("\n")) for doc in read_udhr(path)]


def _tatoeba_english(directory: Path, limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for path in sorted(directory.glob("*/*.eng")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.setdefault(line.strip(), None)
    return list(seen)[:limit]


def stage_data(config: RecipeConfig, out: Path) -> dict[str, Any]:
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    eng, pan, urls = _flores(config)
    train, heldout = heldout_split(urls, config.heldout_lines)
    corpus = build_builtin_corpus(languages=["eng", "pan"], progress=False)
    builtin_pairs = [line.split("\t") for line in
                     corpus.parallel_path("pan_Guru", "train").read_text(encoding="utf-8").splitlines() if "\t" in line]
    pairs = [(eng[i], pan[i]) for i in train] + [(e, p) for e, p in builtin_pairs]
    clean = (documents_by_url(pan, urls, train)
             + [line for line in corpus.mono_path("pan_Guru", "train").read_text(encoding="utf-8").splitlines() if line.strip()]
             + _udhr_sections(config.path("udhr_dir") / "pan.html"))  # fmt: skip
    tatoeba = _tatoeba_english(config.path("tatoeba_dir"), config.english_sentences)
    step = config.sentences_per_document
    english = _udhr_sections(config.path("udhr_dir") / "eng.html") + [
        "\n".join(tatoeba[i : i + step]) for i in range(0, len(tatoeba), step)]
    data = out / "data"
    write_atomic(data / "mt" / "train.tsv", "".join(f"{e}\t{p}\n" for e, p in pairs))
    write_atomic(data / "clean" / "pan.txt", "".join(d + "\n" for d in clean))
    write_atomic(data / "heldout" / "pan.txt", "".join(pan[i] + "\n" for i in heldout))
    write_atomic(data / "english" / "eng.txt", "".join(d + "\n\n" for d in english))
    return {"flores_train_lines": len(train), "flores_heldout_lines": len(heldout), "heldout_first_line": heldout[0],
            "mt_pairs": len(pairs), "clean_documents": len(clean), "english_documents": len(english),
            "english_tatoeba_sentences": len(tatoeba)}  # fmt: skip


def stage_vocab(config: RecipeConfig, out: Path) -> dict[str, Any]:
    from lowres.data.vocab import vocabulary as vocab_lib

    data = out / "data"
    pairs = [line.split("\t") for line in (data / "mt" / "train.tsv").read_text(encoding="utf-8").splitlines()]
    english = (data / "english" / "eng.txt").read_text(encoding="utf-8").split("\n")
    texts = {"eng_Latn": [e for e, _ in pairs] + [s for s in english if s.strip()],
             "pan_Guru": [p for _, p in pairs] + (data / "clean" / "pan.txt").read_text(encoding="utf-8").splitlines()}
    vocab_config = vocab_lib.VocabularyConfig(vocab_size=config.vocab_size, temperature_alpha=1.0)
    path = vocab_lib.train_vocabulary(texts, out / "vocab" / "spm.model", vocab_config, ["eng_Latn", "pan_Guru"])
    return {"vocabulary": str(path), "vocab_size": config.vocab_size}


# ---------------------------------------------------------------- commands


_NOISE = ("cudart_stub", "InitializeLog", "cuInit")  # CUDA probing of a CPU-only install: logged, not echoed


def lowres(args: Sequence[str], log_path: Path) -> None:
    """Runs `python -m lowres.cli ARGS` from the repository root, echoing and logging its output."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "lowres.cli", *args]
    log("$ lowres " + " ".join(args))
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", **os.environ,
           # identical models (the compared LMs) compile once across processes
           "JAX_COMPILATION_CACHE_DIR": str(log_path.parents[1] / "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    with open(log_path, "a", encoding="utf-8") as handle:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if not any(noise in line for noise in _NOISE):
                print("    " + line.rstrip(), flush=True)
        if process.wait():
            raise RuntimeError(f"`lowres {args[0]}` failed with exit code {process.returncode}; see {log_path}")


def train_model(out: Path, name: str, gin_files: Sequence[str], bindings: dict[str, Any]) -> Path:
    """`lowres train` into OUTPUT/runs/NAME with the shared vocabulary placed there first."""
    model_dir = out / "runs" / name
    vocab = model_dir / "vocab" / "spm.model"
    if not vocab.exists():
        vocab.parent.mkdir(parents=True, exist_ok=True)
        vocab.write_bytes((out / "vocab" / "spm.model").read_bytes())
    args = ["train", "--no_progress", f"--model_dir={model_dir}"]
    args += [f"--gin_file={HERE / f}" for f in gin_files]
    args += [f"--gin.{key}={json.dumps(value)}" for key, value in bindings.items()]
    lowres(args, out / "logs" / f"train_{name}.log")
    return model_dir


def stage_mt(config: RecipeConfig, out: Path) -> dict[str, Any]:
    train_model(out, "mt", ["mt.gin"], {"mt/CorpusSpec.source": f"tsv:{out / 'data' / 'mt' / 'train.tsv'}",
                                        "TrainConfig.num_steps": config.mt_steps})
    return {"model_dir": str(out / "runs" / "mt")}


def stage_translate(config: RecipeConfig, out: Path) -> dict[str, Any]:
    lowres(["translationese", "build", f"--source=text:{out / 'data' / 'english' / 'eng.txt'}", "--layout=paragraphs",
            "--src=eng_Latn", "--tgt=pan_Guru", f"--translator=lowres:{out / 'runs' / 'mt'}", f"--beam={config.beam}",
            f"--batch_size={config.translate_batch_size}", f"--max_sentence_chars={config.max_sentence_chars}",
            f"--output={out / 'synthetic'}", "--no_progress"], out / "logs" / "translate.log")  # fmt: skip
    return json.loads((out / "synthetic" / "manifest.json").read_text(encoding="utf-8"))


def stage_tinylm(config: RecipeConfig, out: Path) -> dict[str, Any]:
    train_model(out, "tinylm", ["tinylm.gin"], {"DataConfig.source": f"text:{out / 'data' / 'clean' / 'pan.txt'}",
                                                "TrainConfig.num_steps": config.tinylm_steps})
    return {"model_dir": str(out / "runs" / "tinylm")}


def stage_filter(config: RecipeConfig, out: Path) -> dict[str, Any]:
    log_path = out / "logs" / "filter.log"
    lowres(["translationese", "score", f"--input={out / 'synthetic'}", f"--model_dir={out / 'runs' / 'tinylm'}",
            "--no_progress"], log_path)
    lowres(["translationese", "filter", f"--input={out / 'synthetic'}", f"--output={out / 'filtered'}",
            f"--keep_percent={config.keep_percent}"], log_path)
    return json.loads((out / "filtered" / "filter.json").read_text(encoding="utf-8"))


def corpus_files(out: Path) -> dict[str, str]:
    """The data SOURCE of each training text."""
    return {"clean": f"text:{out / 'data' / 'clean' / 'pan.txt'}",
            "synthetic": f"jsonl:{out / 'synthetic' / 'docs-*-of-*.jsonl'}",
            "filtered": f"jsonl:{out / 'filtered' / 'docs-*-of-*.jsonl'}",
            "extension": f"text:{out / 'data' / 'extension' / 'pan.txt'}"}


def stage_pretrain(config: RecipeConfig, out: Path) -> dict[str, Any]:
    sources = corpus_files(out)
    for name, text, init in MODELS:
        if init is None:
            train_model(out, name, ["lm.gin"], {"DataConfig.source": sources[text], "TrainConfig.num_steps": config.lm_steps})
    return {}


def extension_documents(clean: Sequence[str], synthetic_bytes: int, fraction: float) -> list[str]:
    """The first clean documents whose UTF-8 bytes reach `fraction` of the synthetic corpus' bytes."""
    budget, taken, total = fraction * synthetic_bytes, [], 0
    for doc in clean:
        if total >= budget:
            break
        taken.append(doc)
        total += len(doc.encode("utf-8"))
    return taken


def stage_extend(config: RecipeConfig, out: Path) -> dict[str, Any]:
    synthetic_bytes = text_sizes(read_texts(corpus_files(out)["synthetic"]))["bytes"]
    clean = (out / "data" / "clean" / "pan.txt").read_text(encoding="utf-8").splitlines()
    docs = extension_documents(clean, synthetic_bytes, config.extend_fraction)
    write_atomic(out / "data" / "extension" / "pan.txt", "".join(d + "\n" for d in docs))
    sources = corpus_files(out)
    for name, text, init in MODELS:
        if init is not None:
            train_model(out, name, ["lm.gin"], {
                "DataConfig.source": sources[text], "TrainConfig.num_steps": config.extend_steps,
                "InitConfig.checkpoint": str(out / "runs" / init)})
    return {"extension_documents": len(docs), "synthetic_bytes": synthetic_bytes}


def stage_eval(config: RecipeConfig, out: Path) -> dict[str, Any]:
    args = ["eval", f"--data=text:{out / 'data' / 'heldout' / 'pan.txt'}", "--lang=pan",
            f"--output={out / 'eval' / 'heldout.json'}"]
    args += [f"--model_dir={out / 'runs' / name}" for name, _, _ in MODELS]
    lowres(args, out / "logs" / "eval.log")
    return {"eval": str(out / "eval" / "heldout.json")}


# ---------------------------------------------------------------- report


def read_texts(source: str) -> list[str]:
    """Documents of a text:FILE (one per line) or jsonl:GLOB (`text` field) source."""
    import glob

    kind, _, pattern = source.partition(":")
    texts: list[str] = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            if kind == "text":
                texts.extend(line.rstrip("\n") for line in handle if line.strip())
            else:
                texts.extend(json.loads(line)["text"] for line in handle if line.strip())
    return texts


def text_sizes(texts: Sequence[str], encode: Callable[[str], Sequence[int]] | None = None) -> dict[str, int]:
    sizes = {"documents": len(texts), "bytes": sum(len(t.encode("utf-8")) for t in texts)}
    if encode is not None:
        sizes["tokens"] = sum(len(encode(t)) for t in texts)
    return sizes


def filter_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("documents", "kept", "dropped", "cut_perplexity", "kept_mean_perplexity", "all_mean_perplexity")
    return {"keep_percent": report["config"]["keep_percent"], **{k: report[k] for k in keys}}


def collect_results(config: RecipeConfig, out: Path, timings: dict[str, float]) -> dict[str, Any]:
    """Every model's held-out bits per byte with the sizes of what it was trained on."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(out / "vocab" / "spm.model"))
    sources = corpus_files(out)
    sizes = {name: text_sizes(read_texts(source), processor.encode) for name, source in sources.items()}
    heldout = read_texts(f"text:{out / 'data' / 'heldout' / 'pan.txt'}")
    reports = json.loads((out / "eval" / "heldout.json").read_text(encoding="utf-8"))["models"]
    by_dir = {Path(r["model_dir"]).name: r for r in reports}
    rows = []
    for name, text, init in MODELS:
        report = by_dir[name]["languages"]["pan_Guru"]
        data = [init, text] if init else [text]
        rows.append({"model": name, "data": data, "steps": config.lm_steps + (config.extend_steps if init else 0),
                     "bits_per_byte": report["bits_per_byte"], "sizes": {d: sizes[d] for d in data}})
    unigram = reports[0]["languages"]["pan_Guru"]["unigram_bits_per_byte"]
    return {"config": dataclasses.asdict(config), "heldout": text_sizes(heldout, processor.encode),
            "unigram_bits_per_byte_in_sample": unigram, "models": rows, "corpora": sizes,
            "stages": json.loads((out / "stages" / "data.json").read_text(encoding="utf-8"))["result"],
            "filter": filter_summary(json.loads((out / "filtered" / "filter.json").read_text(encoding="utf-8"))),
            "synthetic_examples": [" / ".join(t.split("\n"))[:120] for t in read_texts(sources["synthetic"])[-3:]],
            "timings_s": timings}  # fmt: skip


def caveats(config: dict[str, Any]) -> str:
    """What the run can and cannot show, with the run's own sizes."""
    get = lambda key, default="?": config.get(key, default)  # noqa: E731
    return f"""\
What this scale can and cannot show:
- Everything here is tiny. The MT model is a 0.56M-parameter encoder-decoder trained for {get("mt_steps")} steps on
  about 2,100 sentence pairs (the FLORES training lines + short built-in pairs); its Punjabi is degenerate
  (repeated syllables, see the samples above), so the "synthetic" corpus is mostly noise, not translationese
  in the paper's sense. The language models are 0.40M-parameter decoders trained for {get("lm_steps")} steps
  (+{get("extend_steps")} for the extended ones). The paper translates billions of tokens with a strong MT
  system and pretrains 28M-85M models: this run is orders of magnitude smaller and does not test its claims.
- It shows the recipe runs end to end from one command (translate -> TinyLM score -> filter ->
  pretrain -> extend on clean text -> held-out evaluation) with one shared vocabulary, so the bits per
  byte of the models are comparable with each other.
- One seed per model: differences of a few hundredths of a bit per byte are within run-to-run noise;
  only large gaps (clean vs synthetic, with vs without the clean extension) mean something, and only here.
- The clean text is in-domain for the held-out set (FLORES), the synthetic text is not (UDHR and Tatoeba
  translated), so the clean-vs-synthetic gap mixes domain with translation quality.
- The clean extension is the first clean documents reaching {get("extend_fraction")} of the unfiltered
  synthetic corpus' bytes (the same documents for both extended models); extended models train
  {get("extend_steps")} steps more than the others.
"""


def comparisons(results: dict[str, Any]) -> list[str]:
    """Sentences comparing the rows that the recipe is about (computed, so they always match the table)."""
    bpb = {row["model"]: row["bits_per_byte"] for row in results["models"]}
    pairs = [("synthetic", "filtered", "TinyLM filtering"), ("synthetic", "synthetic+clean10", "the clean extension"),
             ("filtered", "filtered+clean10", "the clean extension after filtering"),
             ("clean", "filtered+clean10", "filtered + extension against clean only")]  # fmt: skip
    return [f"- {label}: {bpb[a]:.3f} -> {bpb[b]:.3f} bits/byte ({bpb[b] - bpb[a]:+.3f})"
            for a, b, label in pairs if a in bpb and b in bpb]


def results_markdown(results: dict[str, Any]) -> str:
    """The results table (held-out bits per byte and data sizes) with the caveats."""
    lines = ["# Translationese recipe: results", "",
             "Held-out clean Punjabi (FLORES-200 dev, the last "
             f"{results['heldout']['documents']} lines, {results['heldout']['bytes']:,} bytes, never trained on): bits "
             "per byte of each decoder-only model (lower is better). One shared SentencePiece vocabulary.", "",
             "| model | trained on | steps | documents | bytes | tokens | held-out bits/byte |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in results["models"]:
        sizes = [row["sizes"][d] for d in row["data"]]
        cell = lambda key: " + ".join(f"{s[key]:,}" for s in sizes)  # noqa: E731
        lines.append(f"| {row['model']} | {' then '.join(row['data'])} | {row['steps']} | {cell('documents')} | "
                     f"{cell('bytes')} | {cell('tokens')} | {row['bits_per_byte']:.3f} |")
    f = results.get("filter", {})
    lines += ["", "Differences (negative = better on the held-out clean text):", "", *comparisons(results)]
    lines += ["", f"Unigram byte baseline (fitted on the held-out text itself): "
              f"{results['unigram_bits_per_byte_in_sample']:.3f} bits/byte."]
    if f:
        lines.append(f"TinyLM filter: kept {f.get('kept')} of {f.get('documents')} synthetic documents "
                     f"(keep lowest {f.get('keep_percent')}% by perplexity).")
    if results.get("timings_s"):
        total = sum(results["timings_s"].values())
        lines.append("Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_s"].items())
                     + f"; total {total / 60:.1f} min.")
    if results.get("synthetic_examples"):
        lines += ["", "Samples of the synthetic Punjabi (the first 120 characters of the last documents, sentences separated by ' / ', Tatoeba "
                  "sentences translated by the recipe's MT model):", ""]
        lines += [f"- {text}" for text in results["synthetic_examples"]]
    lines += ["", caveats(results.get("config", {}))]
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowres.figures import save_png

    names = [r["model"] for r in results["models"]]
    values = [r["bits_per_byte"] for r in results["models"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(names, values, color=["#4c72b0", "#dd8452", "#f0b27a", "#55a868", "#a1d99b"][: len(names)])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylabel("held-out bits per byte")
    ax.set_title("Clean Punjabi held-out bits/byte (lower is better)")
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def write_results(results: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "results.json", results)
    write_atomic(directory / "results.md", results_markdown(results) + "\n")
    return [directory / "results.json", directory / "results.md", plot_results(results, directory / "results.png")]


# ---------------------------------------------------------------- driver

STAGE_FUNCTIONS: dict[str, Callable[[RecipeConfig, Path], dict[str, Any]]] = {
    "data": stage_data, "vocab": stage_vocab, "mt": stage_mt, "translate": stage_translate, "tinylm": stage_tinylm,
    "filter": stage_filter, "pretrain": stage_pretrain, "extend": stage_extend, "eval": stage_eval,
}  # fmt: skip


def run_stages(config: RecipeConfig, out: Path, functions: dict[str, Callable], stages: Sequence[str]) -> dict[str, float]:
    """Runs each stage whose marker is missing, writes the marker (result + seconds), returns every stage's seconds."""
    timings = {}
    for index, stage in enumerate(stages, 1):
        marker = out / "stages" / f"{stage}.json"
        if marker.exists():
            timings[stage] = json.loads(marker.read_text(encoding="utf-8"))["seconds"]
            log(f"stage {index}/{len(stages)} {stage}: done earlier ({timings[stage]:.0f} s), skipped")
            continue
        log(f"stage {index}/{len(stages)} {stage}: start")
        started = time.perf_counter()
        result = functions[stage](config, out)
        timings[stage] = time.perf_counter() - started
        write_json(marker, {"stage": stage, "seconds": timings[stage], "result": result})
        log(f"stage {index}/{len(stages)} {stage}: done in {timings[stage]:.0f} s (total {sum(timings.values()) / 60:.1f} min)")
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="work directory (data, runs, logs, stage markers)")
    parser.add_argument("--results_dir", type=Path, default=HERE / "results", help="where results.{json,md,png} go")
    parser.add_argument("--gin_file", action="append", default=[], help="extra gin files after recipe.gin")
    parser.add_argument("--gin", action="append", default=[], metavar="BINDING", help="e.g. RecipeConfig.lm_steps=100")
    args = parser.parse_args(argv)
    gin.parse_config_files_and_bindings([str(HERE / "recipe.gin"), *args.gin_file], args.gin, finalize_config=False)
    config = RecipeConfig()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.gin", gin.config_str())
    timings = run_stages(config, out, STAGE_FUNCTIONS, STAGES[:-1])
    log("stage report: writing results")
    for path in write_results(collect_results(config, out, timings), args.results_dir.resolve()):
        log(f"wrote {path}")
    print(results_markdown(json.loads((args.results_dir / "results.json").read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
