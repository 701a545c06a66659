"""`lowres bench data`'s start-up and resume cases, each measured in a fresh process.

* `flores`: FLORES-200 dev, every language, `ul2`, the quickstart shape: time to the first batch
  from a cold token cache (tokenizing included) and from a warm one, peak RSS, and the steady rate,
  for both executors (`indexed`, the token cache sampled by index; `seqio`, seqio's tf.data pipeline
  over the same registered tasks) where the seqio one finishes within its time limit.
* `languages`: a synthetic corpus of N languages (FLORES files copied under made-up codes) at
  20, 204 and 1,000 languages: time to the first batch and peak RSS, cold and warm, as a curve.
* `resume`: the quickstart-shaped stream opened at step 100,000 against step 10: seconds to the
  first resumed batch (indexed), and the seqio executor's replay at a few hundred steps.

A probe is one `python -m lowres.bench.data_scale PROBE.json` process, so its peak RSS is its own.
The vocabulary is trained once per corpus before any probe (its time reported apart): a run trains
it once and stores it in its model directory, while the token cache is what this issue measures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lowres.errors import UsageError

EXECUTORS = ("indexed", "seqio")
CURVE_LANGUAGES = (20, 204, 1000)
RESUME_STEPS = (10, 100_000)
SEQIO_RESUME_STEPS = (10, 300)
RATE_BATCHES = 50
_RESULT = "PROBE_RESULT "


# ---------------------------------------------------------------- the probe (runs in its own process)


def _probe(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import seqio

    from lowres.bench import report
    from lowres.data.config import DataConfig
    from lowres.data.streams.pipeline import training_batches
    from lowres.data.tasks.prepare import prepare_data
    from lowres.data.vocab.vocabulary import VocabularyConfig
    from lowres.models.architecture import architecture_for

    imports_s = time.perf_counter() - started
    config = DataConfig(source=spec["source"], objective=spec["objective"], inputs_length=spec["inputs_length"],
                        targets_length=spec["targets_length"], batch_size=spec["batch_size"],
                        translation_rate=spec.get("translation_rate", 0.0), pipeline=spec["executor"],
                        languages=spec.get("languages") or (), seed=0)  # fmt: skip
    vocab = VocabularyConfig(vocab_size=spec["vocab_size"])
    t0 = time.perf_counter()
    data = prepare_data(Path(spec["model_dir"]), config, vocab, progress=False)
    prepare_s = time.perf_counter() - t0
    if spec["kind"] == "vocabulary":
        return {"vocabulary_s": prepare_s, "vocab_size": data.vocabulary.vocab_size,
                "languages": len(data.languages), "peak_rss_mb": report.peak_rss_mb()}  # fmt: skip
    converter = architecture_for(spec["architecture"]).feature_converter(True)
    start_step = int(spec.get("start_step", 0))
    t1 = time.perf_counter()
    batches = training_batches(data.mixture, config, seqio.ShardInfo(0, 1), start_step, converter,
                               progress=False)  # fmt: skip
    next(batches)
    first_batch_s = time.perf_counter() - t1
    provider = seqio.get_mixture_or_task(data.mixture)
    out = {"imports_s": imports_s, "prepare_s": prepare_s, "first_batch_s": first_batch_s,
           "time_to_first_batch_s": prepare_s + first_batch_s, "languages": len(data.languages),
           "tasks": len(provider.tasks) if isinstance(provider, seqio.Mixture) else 1}  # fmt: skip
    n = int(spec.get("rate_batches", 0))
    if n:
        t2, cpu2, tokens = time.perf_counter(), time.process_time(), 0
        for _ in range(n):
            batch = next(batches)
            tokens += sum(int(a.size) for k, a in batch.items() if k.endswith("_target_tokens")
                          or k == "encoder_input_tokens")  # fmt: skip
        wall = time.perf_counter() - t2
        out.update(tokens_per_sec=tokens / wall, tokens_per_sec_per_core=tokens / max(time.process_time() - cpu2, 1e-9))
    if hasattr(batches, "close"):
        batches.close()
    out["peak_rss_mb"] = report.peak_rss_mb()
    return out


def main(argv: Sequence[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(_RESULT + json.dumps(_probe(spec)), flush=True)


# ---------------------------------------------------------------- running probes


def run_probe(spec: dict[str, Any], workdir: Path, timeout_s: float, env: dict[str, str] | None = None
              ) -> dict[str, Any]:  # fmt: skip
    """One probe in a fresh process; {"error": ...} when it fails or runs past `timeout_s`."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"probe-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "lowres.bench.data_scale", str(path)], capture_output=True,
                              text=True, timeout=timeout_s, env=env, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"did not reach its first batch within {timeout_s:.0f} s", "wall_s": timeout_s}
    wall = time.perf_counter() - started
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_RESULT):
            return {**json.loads(line[len(_RESULT):]), "wall_s": wall}
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
    return {"error": f"exit {done.returncode}: {tail[0][:300]}", "wall_s": wall}


def _shape_spec(shape, source: str, objective: str, model_dir: Path, executor: str, **extra) -> dict[str, Any]:
    return {"source": source, "objective": objective, "inputs_length": shape.inputs_length,
            "targets_length": shape.targets_length, "batch_size": shape.batch_size, "vocab_size": 4000,
            "architecture": shape.architecture, "model_dir": str(model_dir), "executor": executor, **extra}


def _fresh_model_dir(root: Path, name: str, vocabulary: Path) -> Path:
    """A model directory holding only the corpus's already-trained vocabulary."""
    model_dir = root / "runs" / name
    shutil.rmtree(model_dir, ignore_errors=True)
    (model_dir / "vocab").mkdir(parents=True)
    shutil.copyfile(vocabulary, model_dir / "vocab" / "spm.model")
    return model_dir


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, LOWRES_CACHE_DIR=str(cache), JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")


def _vocabulary(shape, source: str, root: Path, cache: Path, timeout_s: float, log) -> tuple[Path, dict]:
    model_dir = root / "runs" / "vocabulary"
    shutil.rmtree(model_dir, ignore_errors=True)
    spec = _shape_spec(shape, source, "ul2", model_dir, "indexed", kind="vocabulary")
    result = run_probe(spec, root / "probes", timeout_s, _env(cache))
    if "error" in result:
        raise RuntimeError(f"bench data: training the vocabulary of {source} failed: {result['error']}")
    log(f"[data] vocabulary of {source}: {result['vocabulary_s']:.1f} s ({result['languages']} languages, "
        f"{result['vocab_size']} ids; trained once, not counted below)")
    return model_dir / "vocab" / "spm.model", result


def startup_rows(shape, source: str, root: Path, label: str, *, executors: Sequence[str] = EXECUTORS,
                 timeout_s: float = 900.0, seqio_timeout_s: float = 600.0, rate_batches: int = RATE_BATCHES,
                 log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict]:  # fmt: skip
    """Cold and warm time to first batch (and the steady rate) of `source` under each executor."""
    cache = root / "cache"
    vocabulary, vocab_result = _vocabulary(shape, source, root, cache, timeout_s, log)
    rows = []
    for executor in executors:
        for temperature in ("cold", "warm"):
            if temperature == "cold":
                shutil.rmtree(cache / "tokens", ignore_errors=True)
            model_dir = _fresh_model_dir(root, f"{label}-{executor}-{temperature}", vocabulary)
            spec = _shape_spec(shape, source, "ul2", model_dir, executor, kind="startup",
                               rate_batches=rate_batches if temperature == "warm" else 0)  # fmt: skip
            limit = seqio_timeout_s if executor == "seqio" else timeout_s
            result = run_probe(spec, root / "probes", limit, _env(cache))
            row = {"case": label, "executor": executor, "cache": temperature, **result}
            rows.append(row)
            log(_startup_line(row))
            if "error" in result and executor == "seqio":
                break  # warm is no faster for seqio (it has no cache): one timeout says it
    return rows, vocab_result


def _startup_line(row: dict[str, Any]) -> str:
    head = f"[data {row['case']} {row['executor']}/{row['cache']}]"
    if "error" in row:
        return f"{head} {row['error']}"
    rate = f", {row['tokens_per_sec']:,.0f} tokens/s" if "tokens_per_sec" in row else ""
    return (f"{head} first batch after {row['time_to_first_batch_s']:.1f} s (+{row['imports_s']:.1f} s imports), "
            f"peak RSS {row['peak_rss_mb']:,.0f} MiB{rate}")


def synthetic_corpus(flores_dir: Path, out: Path, count: int) -> Path:
    """`count` languages in FLORES layout: FLORES files copied (hard-linked) under other ISO 639-3 codes
    with the original's script (`<code>_<Script>.dev`), so every language has real text of its script."""
    import pycountry

    from lowres.data.languages import normalize_language

    originals = sorted(p for p in Path(flores_dir).glob("*.dev"))
    if not originals:
        raise UsageError(f"bench data: no FLORES *.dev files in {flores_dir}; pass --flores_dir=DIR")
    taken = {normalize_language(p.stem).split("_")[0] for p in originals}
    codes = sorted(record.alpha_3 for record in pycountry.languages
                   if getattr(record, "type", None) == "L" and getattr(record, "scope", None) == "I"
                   and record.alpha_3 not in taken)  # fmt: skip
    if count > len(codes):
        raise UsageError(f"bench data: at most {len(codes)} synthetic languages, got {count}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for i in range(count):
        original = originals[i % len(originals)]
        script = normalize_language(original.stem).split("_")[1]
        target = out / f"{codes[i]}_{script}.dev"
        try:
            os.link(original, target)
        except OSError:
            shutil.copyfile(original, target)
    return out


def language_rows(shape, flores_dir: Path, root: Path, counts: Sequence[int] = CURVE_LANGUAGES, *,
                  timeout_s: float = 900.0, log: Callable[[str], None] = print) -> list[dict[str, Any]]:  # fmt: skip
    """Time to first batch and peak RSS of the indexed executor at each language count (one vocabulary,
    trained on the 204 FLORES languages, serves all: the text is theirs)."""
    cache = root / "cache"
    vocabulary, _ = _vocabulary(shape, f"flores:{flores_dir}", root, cache, timeout_s, log)
    rows = []
    for count in counts:
        corpus = synthetic_corpus(flores_dir, root / "synthetic" / f"n{count}", count)
        for temperature in ("cold", "warm"):
            if temperature == "cold":
                shutil.rmtree(cache / "tokens", ignore_errors=True)
            model_dir = _fresh_model_dir(root, f"languages{count}-{temperature}", vocabulary)
            spec = _shape_spec(shape, f"flores:{corpus}", "ul2", model_dir, "indexed", kind="startup")
            result = run_probe(spec, root / "probes", timeout_s, _env(cache))
            row = {"case": "languages", "executor": "indexed", "cache": temperature, "num_languages": count, **result}
            rows.append(row)
            log(_startup_line({**row, "case": f"{count} languages"}))
    return rows


def resume_rows(shape, root: Path, *, timeout_s: float = 600.0, repeats: int = 3,
                log: Callable[[str], None] = print) -> list[dict[str, Any]]:  # fmt: skip
    """Seconds to the first batch of the quickstart-shaped built-in stream opened at a late and an early
    step (indexed), and the seqio executor's replay to a few hundred steps; the best of `repeats`."""
    cache = root / "cache"
    rows = []
    plan = [("indexed", step) for step in RESUME_STEPS] + [("seqio", step) for step in SEQIO_RESUME_STEPS]
    for executor, step in plan:
        best: dict[str, Any] | None = None
        for _ in range(repeats if executor == "indexed" else 1):
            model_dir = root / "runs" / "resume"  # the built-in corpus: its vocabulary is trained once, then reused
            spec = _shape_spec(shape, "builtin", shape.objective, model_dir, executor, kind="startup",
                               start_step=step, translation_rate=0.25)  # fmt: skip
            result = run_probe(spec, root / "probes", timeout_s, _env(cache))
            if best is None or result.get("first_batch_s", 1e9) < best.get("first_batch_s", 1e9):
                best = result
        row = {"case": "resume", "executor": executor, "start_step": step, **best}
        rows.append(row)
        what = best.get("error") or f"first batch {best['first_batch_s']:.2f} s after opening"
        log(f"[data resume {executor} at step {step:,}] {what}")
    return rows


def plot_languages(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Time to first batch (log-log; also with the process's imports, what a user waits for) and peak
    RSS (linear, from zero) against the number of languages, cold and warm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowres.figures import save_png

    good = [r for r in rows if "error" not in r]
    if not good:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    xs = sorted({r["num_languages"] for r in good})
    for temperature, marker, color in (("cold", "o", "C0"), ("warm", "s", "C1")):
        chosen = sorted((r for r in good if r["cache"] == temperature), key=lambda r: r["num_languages"])
        counts = [r["num_languages"] for r in chosen]
        left.plot(counts, [r["time_to_first_batch_s"] for r in chosen], f"{marker}-", color=color,
                  label=f"{temperature} token cache")  # fmt: skip
        left.plot(counts, [r["time_to_first_batch_s"] + r.get("imports_s", 0.0) for r in chosen], f"{marker}:",
                  color=color, label=f"{temperature}, with imports")  # fmt: skip
        right.plot(counts, [r["peak_rss_mb"] / 1024 for r in chosen], f"{marker}-", color=color,
                   label=f"{temperature} token cache")  # fmt: skip
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_ylabel("seconds")
    left.set_title("time to first batch")
    right.set_xscale("log")
    right.set_ylim(bottom=0)
    right.set_ylabel("GiB")
    right.set_title("peak RSS of the process")
    for axis in (left, right):
        axis.set_xlabel("languages (ul2, quickstart shape)")
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return save_png(figure, path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
