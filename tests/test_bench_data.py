"""`lowres bench data`'s start-up probes: each in a fresh process with its own peak memory, on
FLORES-like files the test writes; the synthetic many-language corpus; the languages curve."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from lowres.bench import data_scale, report
from lowres.bench import train as train_bench
from lowres.data.languages import normalize_language

SENTENCES = {
    "eng": "The quick brown fox jumps over the lazy dog number {i} and keeps running far away.",
    "pan": "ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਪੈਦਾ ਹੁੰਦੇ ਹਨ ਅਤੇ ਉਹਨਾਂ ਦੇ ਹੱਕ ਬਰਾਬਰ ਹਨ {i} ਵਾਰ ਫਿਰ।",
    "hin": "सभी मनुष्य जन्म से स्वतंत्र हैं और उनके अधिकार समान हैं संख्या {i} फिर से।",
}


@pytest.fixture(scope="module")
def flores(tmp_path_factory):
    directory = tmp_path_factory.mktemp("flores") / "dev"
    directory.mkdir()
    for lang, sentence in SENTENCES.items():
        (directory / f"{lang}.dev").write_text("".join(sentence.format(i=i) + "\n" for i in range(120)), "utf-8")
    return directory


def test_peak_rss_of_a_child_is_its_own_not_its_parents():
    code = ("import sys; sys.path.insert(0, %r); from lowres.bench.report import peak_rss_mb; print(peak_rss_mb())"
            % str(Path(__file__).resolve().parents[1]))
    ballast = bytearray(400 * 2**20)
    ballast[:: 4096] = b"\1" * len(ballast[:: 4096])  # resident, not just reserved
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert report.peak_rss_mb() > 400 and child < 200, (report.peak_rss_mb(), child)
    del ballast


def test_synthetic_corpus_reuses_flores_text_under_new_codes_of_the_same_script(flores, tmp_path):
    out = data_scale.synthetic_corpus(flores, tmp_path / "n7", 7)
    files = sorted(out.glob("*.dev"))
    assert len(files) == 7
    codes = [normalize_language(f.stem) for f in files]
    assert len(set(codes)) == 7 and not {c.split("_")[0] for c in codes} & {"eng", "pan", "hin"}
    originals = sorted(flores.glob("*.dev"))
    for i, path in enumerate(sorted(out.glob("*.dev"), key=lambda p: p.stem)):
        source = originals[i % 3]
        assert path.read_bytes() == source.read_bytes()
        assert path.stem.split("_")[1] == normalize_language(source.stem).split("_")[1]


def test_probes_measure_cold_and_warm_starts_and_the_languages_curve(flores, tmp_path):
    shape = dataclasses.replace(train_bench.quickstart_shape(), objective="ul2", batch_size=4)
    lines = []
    rows, vocabulary = data_scale.startup_rows(shape, f"flores:{flores}", tmp_path / "flores", "flores",
                                               executors=("indexed",), rate_batches=3, log=lines.append)
    assert vocabulary["languages"] == 3
    assert [(r["executor"], r["cache"]) for r in rows] == [("indexed", "cold"), ("indexed", "warm")]
    for row in rows:
        assert "error" not in row, row
        assert row["tasks"] == 3 and row["time_to_first_batch_s"] > 0 and 100 < row["peak_rss_mb"] < 3000
    assert "tokens_per_sec" in rows[1] and "tokens_per_sec" not in rows[0]
    assert any("first batch after" in line for line in lines)
    curve = data_scale.language_rows(shape, flores, tmp_path / "languages", (5,), log=lines.append)
    assert [(r["num_languages"], r["cache"], r["tasks"]) for r in curve] == [(5, "cold", 5), (5, "warm", 5)]
    png = data_scale.plot_languages(curve, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_probe_that_fails_or_runs_too_long_becomes_an_error_row(tmp_path):
    missing = data_scale.run_probe({"kind": "startup", "source": "flores:/nowhere"}, tmp_path, timeout_s=120)
    assert "error" in missing and missing["error"].startswith("exit ")
    slow = data_scale.run_probe({"kind": "startup"}, tmp_path, timeout_s=0.5)
    assert slow["error"].startswith("did not reach its first batch within")
