"""The continual-pretraining recipe's own logic (experiments/continual/run.py), without training: settings read
from the spec and its gin file, one run's measures from its metrics, and the verdicts of the paired comparisons."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("continual_recipe_run", ROOT / "experiments/continual/run.py")
recipe = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recipe
_spec.loader.exec_module(recipe)


def test_gin_assignments_read_literals_and_skip_references():
    text = ('old/Phase.num_steps = 150\nDataConfig.source = "text:d/{lang}.{split}.txt"  # where\n'
            "MixtureSchedule.phases = [@old/Phase(), @new/Phase()]\nnew/Phase.languages = ['amh_Ethi']\n"
            "# TrainConfig.num_steps = 9\nTrainConfig.num_steps = 300\n")
    values = recipe.gin_assignments(text)
    assert values == {"old/Phase.num_steps": 150, "DataConfig.source": "text:d/{lang}.{split}.txt",
                      "new/Phase.languages": ["amh_Ethi"], "TrainConfig.num_steps": 300}


def test_the_recipe_spec_names_both_languages_and_the_split_directory():
    settings = recipe.spec_settings(recipe.DEFAULT_SPEC)
    assert (settings["lang_a"], settings["lang_b"]) == ("eng_Latn", "amh_Ethi")
    assert settings["data_dir"] == ROOT / "runs/continual/data"
    arms = [arm.name for arm in settings["spec"].arms]
    assert arms[:4] == ["rewarm", "rewarm_replay5", "rewarm_replay25", "infinite"]
    assert len(settings["spec"].seeds) == 3


def _run_dir(tmp_path: Path, a: list[float], b: list[float], switch: int = 10, every: int = 5,
             drop_b_at: int | None = None) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "sweep_run.json").write_text(json.dumps({"state": "done", "seconds": 12.5}))
    (directory / "config.gin").write_text(f"old/Phase.num_steps = {switch}\nnew/Phase.num_steps = None\n")
    lines = []
    for i, (la, lb) in enumerate(zip(a, b), 1):
        step = i * every
        lines.append({"step": step, "loss": 1.0, "learning_rate": 0.1 if step <= switch else 0.2, "target_tokens": 100})
        record = {"step": step, "eval/eng_Latn/loss": la, "eval/amh_Ethi/loss": lb, "eval/loss": (la + lb) / 2}
        if step == drop_b_at:
            del record["eval/amh_Ethi/loss"]
        lines.append(record)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return directory


def test_run_measures_spike_forgetting_and_b_final(tmp_path):
    # evaluations at steps 5..40; the switch at 10: A rises to 6.0 at step 20, then comes back to 5.2
    a = [5.5, 5.0, 5.6, 6.0, 5.8, 5.5, 5.3, 5.2]
    b = [9.0, 9.5, 8.0, 7.0, 6.0, 5.5, 5.2, 5.0]
    curves = recipe.read_run(_run_dir(tmp_path, a, b), "eng_Latn", "amh_Ethi")
    assert curves["switch"] == 10 and curves["steps"] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert curves["phase_a_tokens"] == 200  # the two logged intervals up to the switch
    measures = recipe.run_measures(curves, spike_evals=3)
    assert measures["a_at_switch"] == 5.0
    assert measures["a_peak_step"] == 20 and measures["spike"] == pytest.approx(1.0)
    assert measures["spike_window_end"] == 25
    assert measures["forgetting"] == pytest.approx(0.2) and measures["a_recovered"] == pytest.approx(0.8)
    assert measures["b_final"] == 5.0 and measures["b_at_switch"] == 9.5
    assert measures["lr_sum_window"] == pytest.approx(3 * 5 * 0.2)  # steps 11..25 at 0.2
    # a window of one evaluation sees only step 15
    assert recipe.run_measures(curves, spike_evals=1)["spike"] == pytest.approx(0.6)


def test_an_evaluation_without_one_language_is_refused(tmp_path):
    directory = _run_dir(tmp_path, [5.0] * 4, [9.0] * 4, drop_b_at=15)
    with pytest.raises(SystemExit, match="lacks eval/amh_Ethi/loss"):
        recipe.read_run(directory, "eng_Latn", "amh_Ethi")


def test_unfinished_runs_are_left_out(tmp_path):
    directory = _run_dir(tmp_path, [5.0] * 4, [9.0] * 4)
    (directory / "sweep_run.json").write_text(json.dumps({"state": "running"}))
    assert recipe.read_run(directory, "eng_Latn", "amh_Ethi") is None


def _rows(values: dict[str, list[float]]) -> list[dict]:
    return [{"arm": arm, "seed": seed, "forgetting": v} for arm, vs in values.items() for seed, v in enumerate(vs)]


@pytest.mark.parametrize(("larger", "smaller", "verdict"), [
    ([3.0, 3.1, 2.9], [0.5, 0.6, 0.4], "reproduced"),
    ([3.0, 3.5, 2.5], [2.9, 2.4, 3.1], "same direction, within 3 seed sd"),
    ([2.9, 2.4, 3.1], [3.0, 3.5, 2.5], "not reproduced (within 3 seed sd)"),
    ([0.5, 0.6, 0.4], [3.0, 3.1, 2.9], "not reproduced (opposite direction)"),
    ([3.0], [0.5], "one seed: no seed spread to judge it by"),
])
def test_verdicts_compare_the_paired_difference_with_the_seed_spread(larger, smaller, verdict):
    rows = _rows({"rewarm": larger, "rewarm_replay5": smaller})
    for row in rows:
        row.update({m: 0.0 for m in recipe.MEASURES if m != "forgetting"})
    summary = recipe.summarize_arms(rows, ["rewarm", "rewarm_replay5"])
    result = recipe.compare(rows, summary, "forgetting", "rewarm", "rewarm_replay5")
    assert result["verdict"] == verdict
    assert result["mean"] == pytest.approx(sum(larger) / len(larger) - sum(smaller) / len(smaller))
    if len(larger) > 1:
        spread = max(summary["rewarm"]["forgetting"]["sd"], summary["rewarm_replay5"]["forgetting"]["sd"])
        assert result["in_seed_sd"] == pytest.approx(result["mean"] / spread)
    else:
        assert math.isnan(result["in_seed_sd"])
    assert recipe.compare(rows, summary, "forgetting", "rewarm", "infinite") is None


def test_help_runs_without_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["--help"])
    assert exit_info.value.code == 0
    assert "--report_only" in capsys.readouterr().out
