"""The quickstart switches objective and architecture with one gin binding each; `lowres data sample`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowres import cli

ROOT = Path(__file__).resolve().parents[1]

# Two runs (each costs tens of seconds) cover both architectures and the two ends of the objective
# range: ul2 on the encoder-decoder, causal LM on the fully causal decoder-only model. That each
# objective gin file selects its objective is tested in test_objectives.py.
RUNS = {
    "ul2": ["--gin_file=objectives/ul2.gin"],
    "causal": ["--gin_file=objectives/causal_lm.gin", "--gin.ModelConfig.architecture='decoder_only'",
               "--gin.DataConfig.decoder_attention='causal'"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    env = dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir))
    dirs = {}
    for name, extra in RUNS.items():
        model_dir = tmp_path_factory.mktemp(name) / "model"
        result = subprocess.run(
            [sys.executable, "-m", "lowres.cli", "train", "--gin_file=smoke.gin", *extra, f"--model_dir={model_dir}",
             "--no_progress", "--gin.TrainConfig.num_steps=4", "--gin.TrainConfig.log_every=2",
             "--gin.CheckpointConfig.save_interval_steps=4"],
            cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        dirs[name] = model_dir
    return dirs


def test_one_binding_switches_objective_and_architecture(runs):
    expected = {"ul2": ("ul2", "encoder_decoder"), "causal": ("causal_lm", "decoder_only")}
    for name, model_dir in runs.items():
        info = json.loads((model_dir / "lowres.json").read_text())
        assert (info["objective"], info["model"]["architecture"]) == expected[name]
        config = (model_dir / "config.gin").read_text()
        assert f"DataConfig.objective = '{expected[name][0]}'" in config
        records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [2, 4] and all(r["loss"] > 0 for r in records)
    assert "DataConfig.decoder_attention = 'causal'" in (runs["causal"] / "config.gin").read_text()


def test_data_sample_shows_every_ul2_denoiser(runs, capsys):
    assert cli.main(["data", "sample", "ul2", f"--model_dir={runs['ul2']}", "--lang=yor", "-n", "2"]) == 0
    sections = capsys.readouterr().out.split("== ")[1:]
    assert len(sections) == 7
    for section in sections:
        name = section.splitlines()[0]
        mode = {"nlu": "[NLU]", "nlg": "[NLG]", "s2s": "[S2S]"}[name.rsplit("_", 1)[1]]
        assert section.count(f"mode:    {mode}") == 2 and section.count("targets: ") == 2
        if ".span_" in name:
            inputs, targets = section.split("inputs:")[1].split("targets:")
            assert "<extra_id_0>" in inputs and targets.lstrip().startswith("<extra_id_0>")


def test_data_sample_one_task_by_name_and_clear_error(runs, capsys):
    task = "builtin.cym_Latn.span_3_0p15"
    assert cli.main(["data", "sample", task, f"--model_dir={runs['causal']}", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"== {task}\n") and "mode:    (none)" in out and "<extra_id_0>" in out
    assert cli.main(["data", "sample", "builtin.nope", f"--model_dir={runs['causal']}"]) == 2
    assert "unknown task or mixture 'builtin.nope'" in capsys.readouterr().err
