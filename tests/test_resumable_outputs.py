"""SIGKILL mid-run, rerun the same command: `lowres translationese build|score|filter` and `lowres eval` end
with exactly the output of an uninterrupted run (no line or record duplicated or dropped, no torn file).

Each test runs the real CLI in a subprocess, polls until part of the output is on disk, kills it with
SIGKILL, reruns the same command to completion and compares with an uninterrupted run. (`lowres
translate` has the same test in tests/test_translate.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]


def slow_reverse(sentences, src, tgt):
    """The build translator (`py:tests.test_resumable_outputs:slow_reverse`): each sentence's words reversed,
    slowly enough that a kill lands mid-run."""
    time.sleep(0.03)
    return [" ".join(reversed(s.split())) for s in sentences]


def source_lines(count: int) -> list[str]:
    """Distinct English documents of two or three sentences and varied lengths."""
    lines = []
    for i in range(count):
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(3 + i % 9)]
        lines.append(f"Document {i} says {' '.join(words)}. It has {i % 4} more. End of {i}!")
    return lines


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lowres.cli", *args]


def env(cache_dir: Path) -> dict[str, str]:
    return dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir), TF_CPP_MIN_LOG_LEVEL="3")


def run(args: list[str], cache_dir: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=env(cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_when(args: list[str], cache_dir: Path, ready: Callable[[], bool], timeout: float = 300) -> None:
    """Starts `args`, polls `ready` until it holds, then SIGKILLs the process (which must still be running)."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty process never blocks on it
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=env(cache_dir))
        try:
            deadline = time.time() + timeout
            while time.time() < deadline and process.poll() is None and not ready():
                time.sleep(0.005)
            if process.poll() is not None:
                stderr.seek(0)
                pytest.fail("finished before it could be killed: " + stderr.read().decode(errors="replace")[-3000:])
            assert ready(), "timed out waiting for partial output"
            os.kill(process.pid, signal.SIGKILL)
            assert process.wait() == -signal.SIGKILL
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def visible_files(directory: Path) -> dict[str, bytes]:
    """Every file of `directory` but temporary ones (`.name.*.tmp`, never read back), by name."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and not p.name.startswith(".")}


def assert_no_duplicates(lines: list[str]) -> None:
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ shared inputs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("resumable")


@pytest.fixture(scope="module")
def source(workdir) -> str:
    path = workdir / "source" / "eng.txt"
    path.parent.mkdir()
    path.write_text("\n".join(source_lines(120)) + "\n", encoding="utf-8")
    return f"text:{path}"


@pytest.fixture(scope="module")
def built(workdir, source) -> Path:
    """A `translationese build` output of SHARDS shards (built in-process: the inputs of score and filter)."""
    from lowres.translationese.build import BuildConfig, build_shard
    from lowres.translationese.translators import FunctionTranslator

    out = workdir / "built"
    translator = FunctionTranslator(lambda s, a, b: [" ".join(reversed(x.split())) for x in s], "rev")
    for index in range(SHARDS):
        config = BuildConfig(source=source, src="eng", tgt="pan", output=str(out), batch_size=8,
                             shard_index=index, num_shards=SHARDS)  # fmt: skip
        build_shard(config, translator, progress=False)
    return out


@pytest.fixture(scope="module")
def tinylm(workdir) -> Path:
    """A decoder-only lowres model directory with random weights (a stand-in for a trained TinyLM)."""
    from tests.test_translate import make_model_dir

    return make_model_dir(workdir / "tinylm", architecture="decoder_only")


def score_command(directory: Path, tinylm: Path) -> list[str]:
    return command("translationese", "score", f"--input={directory}", f"--model_dir={tinylm}", "--batch_size=1",
                   "--no_progress")


@pytest.fixture(scope="module")
def scored(workdir, built, tinylm, cache_dir) -> Path:
    """`built` scored by an uninterrupted `translationese score`."""
    out = workdir / "scored"
    shutil.copytree(built, out)
    run(score_command(out, tinylm), cache_dir)
    return out


# ------------------------------------------------------------------ the commands


def test_build_resumes_after_sigkill(workdir, source, cache_dir):
    def build_command(out: Path) -> list[str]:
        return command("translationese", "build", f"--source={source}", "--src=eng", "--tgt=pan",
                       "--translator=py:tests.test_resumable_outputs:slow_reverse", f"--output={out}",
                       "--batch_size=4", "--chunk_documents=3", "--no_progress")  # fmt: skip

    reference, out = workdir / "build-reference", workdir / "build-killed"
    shard = "docs-00000-of-00001.jsonl"
    run(build_command(reference), cache_dir)
    expected = lines_of(reference / shard)
    assert len(expected) == 120
    kill_when(build_command(out), cache_dir, lambda: len(lines_of(out / shard)) >= 9)
    killed_at = len(lines_of(out / shard))
    assert 9 <= killed_at < len(expected)
    with open(out / shard, "a", encoding="utf-8") as handle:
        handle.write('{"id": "torn')  # as if the kill had cut a write short
    result = run(build_command(out), cache_dir)
    assert lines_of(out / shard) == expected
    assert_no_duplicates(lines_of(out / shard))
    manifest = json.loads((out / "docs-00000-of-00001.manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and manifest["this_run"]["resumed_after"] >= killed_at
    assert f"{len(expected) - manifest['this_run']['resumed_after']} documents this run" in result.stdout
    merged = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert merged["counts"] == json.loads((reference / "manifest.json").read_text(encoding="utf-8"))["counts"]


def test_score_resumes_after_sigkill(workdir, built, tinylm, scored, cache_dir):
    out = workdir / "score-killed"
    shutil.copytree(built, out)
    names = [f"scores-{i:05d}-of-{SHARDS:05d}.jsonl" for i in range(SHARDS)]
    kill_when(score_command(out, tinylm), cache_dir, lambda: (out / names[0]).exists())
    present = [name for name in names if (out / name).exists()]
    assert names[0] in present and len(present) < SHARDS  # killed between shards
    for name in present:  # whatever is there is complete
        assert lines_of(out / name) == lines_of(scored / name)
    run(score_command(out, tinylm), cache_dir)
    for name in names:
        assert lines_of(out / name) == lines_of(scored / name)
        assert_no_duplicates(lines_of(out / name))
        docs = lines_of(out / name.replace("scores-", "docs-"))
        assert [json.loads(s)["id"] for s in lines_of(out / name)] == [json.loads(d)["id"] for d in docs]
    summary, expected = (json.loads((d / "scores.json").read_text(encoding="utf-8")) for d in (out, scored))
    assert summary["shards"] == expected["shards"] and summary["documents"] == expected["documents"] == 120


def test_filter_reruns_after_sigkill(workdir, scored, cache_dir):
    def filter_command(out: Path) -> list[str]:
        return command("translationese", "filter", f"--input={scored}", f"--output={out}", "--keep_percent=40")

    out = workdir / "filtered"
    run(filter_command(out), cache_dir)
    expected = visible_files(out)
    assert {"filter.json", "perplexity_histogram.png"} <= set(expected)
    shutil.rmtree(out)
    kill_when(filter_command(out), cache_dir, lambda: out.exists() and any(out.glob("docs-*.jsonl")))
    partial = visible_files(out)
    assert "filter.json" not in partial  # killed before the end
    for name, data in partial.items():  # whatever is there is complete
        assert data == expected[name], name
    run(filter_command(out), cache_dir)
    assert visible_files(out) == expected
    kept = [line for name in sorted(expected) if name.startswith("docs-") for line in lines_of(out / name)]
    assert len(kept) == json.loads(expected["filter.json"])["kept"] == 48
    assert_no_duplicates(kept)


def test_eval_reruns_after_sigkill(workdir, cache_dir):
    from tests.test_translate import SENTENCES, make_model_dir

    model_dir = make_model_dir(workdir / "translator")
    flores = workdir / "flores"
    flores.mkdir()
    (flores / "eng_Latn.dev").write_text("\n".join(SENTENCES[0::2] * 4) + "\n", encoding="utf-8")
    (flores / "pan_Guru.dev").write_text("\n".join((SENTENCES[1::2] + ["ਹੈ।"]) * 4) + "\n", encoding="utf-8")

    def eval_command(output: Path) -> list[str]:
        return command("eval", f"--model_dir={model_dir}", f"--data=flores:{flores}", "--translate=eng-pan",
                       "--translate_limit=4", "--batch_size=4", f"--output={output}")

    reference = workdir / "eval-reference" / "eval.json"
    run(eval_command(reference), cache_dir)
    expected = visible_files(reference.parent)
    assert set(expected) == {"eval.json", "eval.md", "eval.png"}
    output = workdir / "eval-killed" / "eval.json"
    kill_when(eval_command(output), cache_dir, lambda: output.exists())
    partial = visible_files(output.parent)
    assert "eval.json" in partial and set(partial) < set(expected)  # killed while writing the outputs
    for name, data in partial.items():  # whatever is there is complete
        assert data == expected[name], name
    run(eval_command(output), cache_dir)
    produced = visible_files(output.parent)
    assert json.loads(produced["eval.json"]) == json.loads(expected["eval.json"])  # no timing fields to ignore
    assert produced == expected  # the same JSON, table and chart, byte for byte
