"""The `lowres` command line end to end, and its one-line errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowres import cli

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lowres.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """A smoke-sized run trained through the CLI, then resumed for 10 more steps."""
    model_dir = tmp_path_factory.mktemp("run") / "model"
    env = dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir))
    first = run_cli("train", "--gin_file=smoke.gin", f"--model_dir={model_dir}", "--no_progress",
                    "--gin.TrainConfig.num_steps=10", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli("train", "--gin_file=gin_configs/smoke.gin", f"--model_dir={model_dir}", "--no_progress",
                     "--gin.TrainConfig.num_steps=20", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    return model_dir, first, second, env


@pytest.mark.slow
def test_train_writes_its_contract_and_resumes(trained):
    model_dir, first, second, _ = trained
    assert (model_dir / "config.gin").read_text().count("TrainConfig.num_steps = 20") == 1
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    for record in records:
        assert {"step", "loss", "learning_rate", "tokens_per_sec"} <= set(record)
    assert "resumed from" in second.stdout
    steps = sorted(int(p.name) for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 20 and len(steps) <= 2
    assert (model_dir / "vocab" / "spm.model").is_file()


@pytest.mark.slow
def test_eval_reports_bits_per_byte_per_language(trained, tmp_path):
    model_dir, _, _, env = trained
    output = tmp_path / "eval.json"
    result = run_cli("eval", f"--model_dir={model_dir}", "--data=builtin", f"--output={output}",
                     "--langs=pan,cym", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["step"] == 20
    assert set(report["languages"]) == {"pan_Guru", "cym_Latn"}
    for row in report["languages"].values():
        assert set(row) >= {"bits_per_byte", "tokens", "bytes", "documents", "unigram_bits_per_byte"}
        assert 0 < row["bits_per_byte"] < 20 and row["tokens"] > 0 and row["bytes"] > row["tokens"] / 4
    assert "| pan_Guru |" in result.stdout


@pytest.mark.slow
def test_data_sample_shows_every_ul2_denoiser_decoded(trained):
    model_dir, _, _, env = trained
    out = run_cli("data", "sample", f"--model_dir={model_dir}", "--objective=ul2", "--lang=yor", "-n", "1", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    sections = out.stdout.split("== ")[1:]
    assert len(sections) == 7
    for section in sections:
        name = section.splitlines()[0]
        mode = {"nlu": "[NLU]", "nlg": "[NLG]", "s2s": "[S2S]"}[name.rsplit("_", 1)[1]]
        assert f"mode:    {mode}" in section
        if ".span_" in name:
            assert "<extra_id_0>" in section.split("inputs:")[1].split("targets:")[0]


def test_help_for_every_command():
    for args in ([], ["train"], ["eval"], ["data"], ["data", "describe"], ["data", "sample"], ["models", "list"]):
        out = run_cli(*args, "--help")
        assert out.returncode == 0 and "usage: lowres" in out.stdout


def test_models_list_prints_every_preset(capsys):
    from lowres.models.config import ENCODER_DECODER_PRESETS

    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ENCODER_DECODER_PRESETS:
        assert f"| {name} | encoder_decoder |" in out


def _main_error(capsys, *args):
    import gin

    gin.clear_config()
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--gin_file=missing.gin", "--model_dir={tmp}/m"], "gin file 'missing.gin' not found"),
        (["train", "--gin_file=smoke.gin", "--gin.NoSuchThing.x=1", "--model_dir={tmp}/m"], "NoSuchThing"),
        (["train", "--gin_file=smoke.gin", "--gin.TrainConfig.no_such_field=1", "--model_dir={tmp}/m"],
         "no_such_field"),
        (["train", "--gin_file=smoke.gin", "--gin.DataConfig.languages=['xx']", "--model_dir={tmp}/m"], "'xx'"),
        (["train", "--gin_file=smoke.gin", "--gin.StreamConfig.kind='schedule'", "--model_dir={tmp}/m"],
         "MixtureSchedule.phases is empty"),  # a required value left unset fails before any data or compile
        (["train", "--gin_file=smoke.gin", "--gin.StreamConfig.kind='learned'", "--model_dir={tmp}/m"],
         "StreamConfig.learned_tasks"),
        (["train", "--gin_file=smoke.gin", "--model_dir=/proc/lowres-cannot-write"], "not writable"),
        (["eval", "--model_dir={tmp}/none", "--output={tmp}/o.json"], "no trained model"),
        (["eval", "--model_dir={trained}", "--data=flores:{tmp}/missing", "--output={tmp}/o.json"], "not a directory"),
        (["eval", "--model_dir={trained}", "--data=text:{tmp}/empty.txt", "--lang=pan", "--output={tmp}/o.json"],
         "holds no text"),
        (["eval", "--model_dir={trained}", "--data=builtin", "--langs=klingon", "--output={tmp}/o.json"],
         "'klingon'"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(args, needle, tmp_path, capsys, trained):
    (tmp_path / "empty.txt").write_text("\n\n")
    args = [a.format(tmp=tmp_path, trained=trained[0]) for a in args]
    code, err = _main_error(capsys, *args)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_one_binding_switches_to_a_decoder_only_model_with_mix_ln(tmp_path, cache_dir):
    model_dir = tmp_path / "decoder"
    env = dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir))
    trained = run_cli("train", "--gin_file=smoke.gin", f"--model_dir={model_dir}", "--no_progress",
                      "--gin.TrainConfig.num_steps=6", "--gin.ModelConfig.architecture='decoder_only'",
                      "--gin.ModelConfig.norm='mix'", env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    info = json.loads((model_dir / "lowres.json").read_text())
    assert info["model"]["architecture"] == "decoder_only" and info["model"]["norm"] == "mix"
    output = tmp_path / "eval.json"
    evaluated = run_cli("eval", f"--model_dir={model_dir}", "--data=builtin", "--langs=yor", f"--output={output}",
                        env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(output.read_text())["languages"]["yor_Latn"]["bits_per_byte"] > 0


@pytest.mark.parametrize("error,code,prefix", [
    (__import__("lowres.errors", fromlist=["DataError"]).DataError("the file x.txt holds no text\nsecond line"), 2,
     "lowres: error: the file x.txt holds no text"),
    (ValueError("operands could not be broadcast together"), 1, "lowres: internal error: ValueError: operands"),
    (FileNotFoundError(2, "No such file or directory"), 1, "lowres: internal error: FileNotFoundError"),
])
def test_only_lowres_errors_become_one_line_user_errors(error, code, prefix, monkeypatch, capsys):
    """A LowresError is the user's to fix (exit 2, first line only); any other exception, even a ValueError
    from numpy or JAX internals, is a bug in lowres and says so (exit 1)."""

    def fail(args):
        raise error

    monkeypatch.setattr(cli.COMMANDS["plot"], "run", fail)
    assert cli.main(["plot", "somewhere"]) == code
    err = capsys.readouterr().err
    assert err.startswith(prefix) and len(err.strip().splitlines()) == 1, err
    with pytest.raises(type(error)):
        cli.main(["--debug", "plot", "somewhere"])


def test_an_in_process_command_leaves_no_gin_bindings_behind(tmp_path, capsys):
    from lowres.training.batch_sources import StreamConfig

    argv = ["train", "--gin_file=smoke.gin", "--gin.StreamConfig.kind='learned'", f"--model_dir={tmp_path}/m"]
    assert cli.main(argv) == 2  # refused (no learned_tasks) after the bindings were parsed
    assert "StreamConfig.learned_tasks" in capsys.readouterr().err
    assert StreamConfig().kind == "mixture"  # the default again, not the command's binding


def test_hosts_checking_one_directory_at_once_all_find_it_writable(tmp_path):
    """The hosts of a multi-host run check the shared --model_dir at the same moment: one host's probe
    must not be removed under another's (a shared probe name failed a 2-process CI run)."""
    import threading

    from lowres.cli.common import check_writable

    start, failures = threading.Barrier(8), []

    def host():
        start.wait()
        for _ in range(300):
            try:
                check_writable(tmp_path / "shared", "--model_dir")
            except Exception as error:  # noqa: BLE001 - any failure is the bug
                failures.append(error)

    threads = [threading.Thread(target=host) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert list((tmp_path / "shared").iterdir()) == []  # no probe left behind
