"""`lowres bench decode` measures every requested row and reports lowres' tokens/s (HF side optional)."""

import pytest

from lowres.bench import decode


def test_decode_bench_rows(monkeypatch):
    monkeypatch.setattr(decode, "HF_PYTHON", "/nonexistent/python")
    lines = []
    record = decode.run("tiny", steps=1, log=lines.append, batches=(2,), architectures=("decoder_only",),
                        caches=(True,))
    (row,) = record["rows"]
    assert row["batch"] == 2 and row["cache"] and row["lowres_tokens_per_sec"] > 0
    assert row["lowres_tokens_per_sec"] * row["lowres_latency_s"] == pytest.approx(2 * decode.SHAPES["tiny"]["new_tokens"])
    assert record["case"] == "decode" and record["tokens_per_sec"] == row["lowres_tokens_per_sec"]
    assert record["hf_python"] is None and "speedup_vs_hf" not in row
    assert "| decoder_only | 2 |" in lines[-1]
