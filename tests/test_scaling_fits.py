"""Scaling-law fits (lowres.scaling, `lowres fit`): known parameters are recovered from noisy synthetic
data, the annealing law predicts a schedule it never saw, and run directories are read with the
learning rate of every update rebuilt from config.gin and checked against the log.

Synthetic training curves are made as the trainer logs them: a loss per update (measured before
the update, with noise), averaged over each logging interval, the learning rate of the interval's
last update beside it.
"""

from __future__ import annotations

import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest

from lowres.cli import main
from lowres.errors import DataError, MissingFileError, UsageError
from lowres.scaling import laws
from lowres.scaling.curves import read_bindings, read_curve, read_schedule
from lowres.scaling.tables import read_columns
from lowres.training.optimizer import OptimizerConfig, learning_rate_schedule

TRUTH = {"L0": 2.0, "A": 1.2, "alpha": 0.5, "C": 0.25}
STEPS, WARMUP, LOG_EVERY, PEAK = 3000, 100, 10, 3e-3
NOISE = 0.01  # relative, per update; ~0.3 % on a logged interval mean
SCHEDULES = {
    "constant": {"schedule": "constant"},
    "cosine": {"schedule": "cosine", "end_learning_rate_fraction": 0.1},
    "wsd": {"schedule": "wsd", "decay_fraction": 0.2, "end_learning_rate_fraction": 0.0},
}


def _optimizer(name: str) -> OptimizerConfig:
    return OptimizerConfig(learning_rate=PEAK, warmup_steps=WARMUP, **SCHEDULES[name])


def _rates(config: OptimizerConfig, steps: int = STEPS) -> np.ndarray:
    return np.asarray(learning_rate_schedule(config, steps)(jnp.arange(steps)), float)


def _trainer_log(rates: np.ndarray, seed: int, log_every: int = LOG_EVERY, params=TRUTH, lam: float = 0.999):
    """(records, per-update losses) as `lowres train` would log a model that follows the law exactly."""
    per_update = laws.annealing_loss(params, rates, lam, WARMUP)[:-1]  # loss measured after n = 0 .. T-1 updates
    per_update = np.where(np.isnan(per_update), 8.0, per_update)  # the first update (S1 = 0): any finite loss
    per_update = per_update * (1 + NOISE * np.random.default_rng(seed).standard_normal(len(rates)))
    records, previous = [], 0
    for done in range(1, len(rates) + 1):
        if done % log_every == 0 or done == len(rates):
            loss = float(per_update[previous:done].mean())
            records.append({"step": done, "loss": loss, "nll": loss - 0.01,
                            "learning_rate": float(np.float32(rates[done - 1])), "grad_norm": 1.0})  # fmt: skip
            previous = done
    return records


def _curve(name: str, seed: int) -> laws.Curve:
    rates = _rates(_optimizer(name))
    records = _trainer_log(rates, seed)
    return laws.Curve.interval_means(name, rates, [r["step"] for r in records], [r["loss"] for r in records], WARMUP)


@pytest.fixture(scope="module")
def curves() -> dict[str, laws.Curve]:
    return {name: _curve(name, seed) for seed, name in enumerate(SCHEDULES)}


# --- the annealing law --------------------------------------------------------------------------------


def test_annealing_areas_follow_the_recursion():
    rates = np.array([0.0, 0.5, 1.0, 1.0, 0.8, 0.5, 0.5, 0.7])  # warm-up of 2 updates, decay, a re-warm
    lam = 0.9
    s1, s2 = laws.annealing_areas(rates, lam, warmup_steps=2)
    momentum, area, expected = 0.0, 0.0, [0.0]
    for i in range(1, len(rates) + 1):  # update i has rate rates[i - 1]
        change = rates[i - 2] - rates[i - 1] if i > 3 else 0.0  # none up to and including warm-up + 1
        momentum = lam * momentum + change
        area += momentum
        expected.append(area)
    np.testing.assert_allclose(s1, np.concatenate([[0], np.cumsum(rates)]))
    np.testing.assert_allclose(s2, expected)
    assert s2[6] > 0 and s2[-1] - s2[-2] < s2[-2] - s2[-3]  # decay adds area, the re-warm takes some back


def test_annealing_law_recovers_parameters_and_predicts_an_unseen_schedule(curves):
    fit = laws.fit_annealing_law([curves["constant"], curves["cosine"]])
    print("annealing fit", fit.params, fit.residuals)
    assert fit.params["L0"] == pytest.approx(TRUTH["L0"], abs=0.03)
    assert fit.params["A"] == pytest.approx(TRUTH["A"], rel=0.05)
    assert fit.params["alpha"] == pytest.approx(TRUTH["alpha"], abs=0.02)
    assert fit.params["C"] == pytest.approx(TRUTH["C"], rel=0.05)
    assert fit.num_points == 2 * (STEPS // LOG_EVERY - WARMUP // LOG_EVERY)  # warm-up left out
    wsd = laws.fitted_points([curves["wsd"]])[0]
    errors = laws.prediction_errors(laws.predict_curve(fit.params, wsd), wsd.values)
    print("WSD predicted from its learning rates", errors)
    assert errors["max_rel_error"] < 0.015  # the measured curve's own noise is ~0.3 % a point
    assert abs(errors["final_rel_error"]) < 0.005
    assert errors["mean_abs_error"] < 0.01


@pytest.mark.parametrize("wrong", [{"lam": 0.9}, {"with_annealing": False}], ids=["lambda=0.9", "C=0"])
def test_a_wrong_law_predicts_the_unseen_schedule_clearly_worse(curves, wrong):
    wsd = laws.fitted_points([curves["wsd"]])[0]
    errors = {}
    for name, options in (("right", {}), ("wrong", wrong)):
        fit = laws.fit_annealing_law([curves["constant"], curves["cosine"]], **options)
        predicted = laws.predict_curve(fit.params, wsd, fit.constants["lambda"])
        errors[name] = laws.prediction_errors(predicted, wsd.values)
    print(wrong, "final relative error", errors["right"]["final_rel_error"], "->", errors["wrong"]["final_rel_error"])
    assert abs(errors["wrong"]["final_rel_error"]) > 5 * abs(errors["right"]["final_rel_error"])
    assert errors["wrong"]["max_rel_error"] > 3 * errors["right"]["max_rel_error"]


def test_annealing_fit_needs_points_after_the_warm_up(curves):
    with pytest.raises(DataError, match="points after the skipped steps"):
        laws.fit_annealing_law([curves["constant"]], skip_steps=STEPS - 20)


# --- power laws and bootstrap intervals -----------------------------------------------------------------


def _noisy(values: np.ndarray, seed: int) -> np.ndarray:
    return values * (1 + 0.005 * np.random.default_rng(seed).standard_normal(len(values)))


def _assert_recovered(result: laws.FitResult, truth: dict[str, float], rel: float) -> None:
    print(result.law, {k: (round(result.params[k], 4), truth[k], result.intervals[k]) for k in truth})
    for name, value in truth.items():
        low, high = result.intervals[name]
        assert result.params[name] == pytest.approx(value, rel=rel), name
        assert low < high and low <= value <= high, (name, value, low, high)


def test_power_law_recovers_known_parameters_with_intervals_around_them():
    sizes = np.repeat(np.geomspace(1e6, 1e9, 8), 2)  # two seeds per size
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.34}
    losses = _noisy(laws.predict("power", truth, {}, sizes), seed=1)
    result = laws.bootstrap(laws.fit_power_law, [sizes, losses], laws.fit_power_law(sizes, losses), resamples=200)
    assert result.resamples == 200 and result.confidence == 0.95
    _assert_recovered(result, truth, rel=0.1)
    again = laws.bootstrap(laws.fit_power_law, [sizes, losses], laws.fit_power_law(sizes, losses), resamples=200)
    assert again.intervals == result.intervals  # seeded


def test_joint_law_recovers_known_parameters():
    n, d = (grid.ravel() for grid in np.meshgrid(np.geomspace(1e6, 1e9, 5), np.geomspace(1e8, 1e11, 5)))
    truth = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
    losses = _noisy(laws.predict("joint", truth, {}, n, d), seed=1)
    result = laws.bootstrap(laws.fit_joint_law, [n, d, losses], laws.fit_joint_law(n, d, losses), resamples=200)
    _assert_recovered(result, truth, rel=0.15)


def test_nmt_law_recovers_known_parameters_and_records_its_reference_sizes():
    ne, nd = (grid.ravel() for grid in np.meshgrid(np.geomspace(1e7, 5e8, 4), np.geomspace(2e7, 5e8, 4)))
    truth = {"a": 2.5, "p_e": 0.3, "p_d": 0.5, "L_inf": 1.2}
    reference = {"N_e0": 1e7, "N_d0": 2e7}
    losses = _noisy(laws.predict("nmt", truth, reference, ne, nd), seed=1)
    result = laws.bootstrap(laws.fit_nmt_law, [ne, nd, losses], laws.fit_nmt_law(ne, nd, losses), resamples=200)
    assert result.constants == reference  # the smallest sizes in the data
    larger = ne > 1e7  # a refit without the smallest encoders (as in a bootstrap draw) keeps the reference
    assert laws.fit_nmt_law(ne[larger], nd[larger], losses[larger], constants=reference).constants == reference
    _assert_recovered(result, truth, rel=0.05)


def test_power_law_refuses_too_few_points():
    with pytest.raises(DataError, match="3 points cannot determine"):
        laws.fit_power_law([1e6, 1e7, 1e8], [3.0, 2.5, 2.2])


# --- reading run directories ------------------------------------------------------------------------------


def _config_gin(optimizer: dict, num_steps: int, log_every: int) -> str:
    """config.gin in the layout `lowres train` writes (gin's operative config), with other configurables."""
    lines = ["# Parameters for DataConfig:", "# " + "=" * 78, "DataConfig.batch_size = 8",
             "DataConfig.languages = ['eng', 'pan', 'yor', 'cym']", "",
             "# Parameters for objective:", "# " + "=" * 78, "objective.mode_tokens = True", "",
             "# Parameters for OptimizerConfig:", "# " + "=" * 78]  # fmt: skip
    lines += [f"OptimizerConfig.{k} = {v!r}" for k, v in sorted(optimizer.items())]
    lines += ["", "# Parameters for TrainConfig:", "# " + "=" * 78, f"TrainConfig.log_every = {log_every}",
              f"TrainConfig.num_steps = {num_steps}", ""]  # fmt: skip
    return "\n".join(lines)


def _fake_run(directory, schedule: str, seed: int, steps: int = STEPS, log_every: int = LOG_EVERY, evals: bool = False):
    optimizer = {"learning_rate": PEAK, "warmup_steps": WARMUP, **SCHEDULES[schedule]}
    rates = _rates(OptimizerConfig(**optimizer), steps)
    records = _trainer_log(rates, seed, log_every)
    if evals:  # held-out evaluations: separate records, measured after `step` updates
        law = laws.annealing_loss(TRUTH, rates, 0.999, WARMUP)
        records += [{"step": s, "eval/loss": float(law[s]) + 0.1} for s in range(200, steps + 1, 200)]
    directory.mkdir(parents=True)
    (directory / "config.gin").write_text(_config_gin(optimizer, steps, log_every))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def test_read_curve_rebuilds_the_learning_rate_of_every_update(tmp_path):
    run = _fake_run(tmp_path / "wsd", "wsd", seed=0, steps=395, log_every=25, evals=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = read_curve(run)
    assert len(curve.learning_rates) == 395 and curve.warmup_steps == WARMUP
    logged = {r["step"]: r["learning_rate"] for r in records if "learning_rate" in r}
    np.testing.assert_allclose([curve.learning_rates[s - 1] for s in logged], list(logged.values()), rtol=1e-6)
    assert list(curve.steps[-3:]) == [350, 375, 395]  # the last interval is short
    assert list(curve.start[:3]) == [0, 25, 50] and list(curve.stop[:3]) == [25, 50, 75] and curve.start[-1] == 375
    held_out = read_curve(run, "eval/loss")
    assert list(held_out.start[:2]) == [200] and list(held_out.stop[:2]) == [201]  # measured at the step
    schedule = read_schedule(run)
    assert schedule.num_steps == 395 and schedule.optimizer.schedule == "wsd"
    assert schedule.optimizer.decay_fraction == 0.2


def test_read_bindings_resolves_macros_and_module_names(tmp_path):
    path = tmp_path / "config.gin"
    path.write_text("PEAK = 0.01\nlowres.training.optimizer.OptimizerConfig.learning_rate = %PEAK\n"
                    "train/OptimizerConfig.warmup_steps = 7\nModel.layer = @Dense\n")  # fmt: skip
    bindings = read_bindings(path)
    assert bindings[("OptimizerConfig", "learning_rate")] == 0.01
    assert ("OptimizerConfig", "warmup_steps") not in bindings  # scoped: not what the trainer reads


def test_a_schedule_that_does_not_match_the_log_is_an_error(tmp_path):
    run = _fake_run(tmp_path / "run", "cosine", seed=0, steps=200, log_every=20)
    config = run / "config.gin"
    config.write_text(config.read_text().replace("TrainConfig.num_steps = 200", "TrainConfig.num_steps = 400"))
    with pytest.raises(DataError, match=r"learning rate logged at step 120 .* rebuilt from config.gin"):
        read_curve(run)


def test_missing_files_and_metrics_are_one_line_errors(tmp_path):
    with pytest.raises(MissingFileError, match="is not a directory"):
        read_curve(tmp_path / "nowhere")
    run = _fake_run(tmp_path / "run", "constant", seed=0, steps=200, log_every=20)
    with pytest.raises(DataError, match=r"no value of metric 'eval/loss'; it logs grad_norm, learning_rate, loss, nll"):
        read_curve(run, "eval/loss")
    (run / "config.gin").unlink()
    with pytest.raises(MissingFileError, match="config.gin not found"):
        read_curve(run)
    (run / "metrics.jsonl").unlink()
    with pytest.raises(MissingFileError, match="metrics.jsonl not found"):
        read_curve(run)


def test_read_columns_skips_rows_without_a_value_or_unfinished(tmp_path):
    table = tmp_path / "results.csv"
    table.write_text("run,state,params,loss\na,done,1e6,3.1\nb,failed,1e7,\nc,done,1e8,2.5\nd,running,1e9,2.9\n")
    sizes, losses = read_columns(table, [("params", "--x"), ("loss", "--y")])
    assert list(sizes) == [1e6, 1e8] and list(losses) == [3.1, 2.5]
    with pytest.raises(UsageError, match=r"--y=bpb: .* has no column 'bpb'; its columns: run, state, params, loss"):
        read_columns(table, [("params", "--x"), ("bpb", "--y")])


# --- the command line -------------------------------------------------------------------------------------


def test_fit_schedule_command(tmp_path, capsys):
    runs = {name: _fake_run(tmp_path / name, name, seed) for seed, name in enumerate(SCHEDULES)}
    out = tmp_path / "fit"
    code = main(["fit", "schedule", "--fit", str(runs["constant"]), "--fit", str(runs["cosine"]),
                 "--predict", str(runs["wsd"]), "--output", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "max rel error" in printed and "L0" in printed
    assert {p.name for p in out.iterdir()} == {"fit.json", "fit.md", "fit.png", "prediction.png"}
    summary = json.loads((out / "fit.json").read_text())
    params = summary["fit"]["params"]
    assert params["L0"] == pytest.approx(TRUTH["L0"], abs=0.03) and params["C"] == pytest.approx(TRUTH["C"], rel=0.05)
    (prediction,) = summary["predictions"]
    assert prediction["run"] == str(runs["wsd"]) and prediction["max_rel_error"] < 0.015
    assert summary["fit"]["constants"]["lambda"] == 0.999 and summary["metric"] == "loss"
    assert "## Predictions from the learning rates alone" in (out / "fit.md").read_text()


def _write_table(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_fit_power_command(tmp_path, capsys):
    sizes = np.repeat(np.geomspace(1e6, 1e9, 8), 2)
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.34}
    losses = _noisy(laws.predict("power", truth, {}, sizes), seed=1)
    rows = [{"run": f"r{i}", "params": f"{n:.0f}", "eval_loss": f"{y:.5f}"}
            for i, (n, y) in enumerate(zip(sizes, losses))]
    rows.append({"run": "failed", "params": "2e9", "eval_loss": ""})
    table = _write_table(tmp_path / "results.csv", rows)
    out = tmp_path / "fit"
    code = main(["fit", "power", "--table", str(table), "--y", "eval_loss", "--x", "params", "--bootstrap", "50",
                 "--output", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert "95% CI" in capsys.readouterr().out
    summary = json.loads((out / "fit.json").read_text())
    assert summary["fit"]["num_points"] == 16 and summary["fit"]["resamples"] == 50
    for name, value in truth.items():
        assert summary["fit"]["params"][name] == pytest.approx(value, rel=0.1)
    assert (out / "fit.png").stat().st_size > 0 and "| alpha |" in (out / "fit.md").read_text()

    code = main(["fit", "power", "--table", str(table), "--y", "bpb", "--x", "params", "--output", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert error.startswith("lowres: error: --y=bpb:") and "columns: run, params, eval_loss" in error
    code = main(["fit", "power", "--law", "joint", "--table", str(table), "--y", "eval_loss", "--x", "params",
                 "--output", str(out)])  # fmt: skip
    assert code == 2 and "needs two size columns" in capsys.readouterr().err
