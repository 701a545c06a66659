"""Continual pretraining (issue #19 recipe 3, METHODS.md section 6) end to end on CPU, from one command.

    python experiments/continual/run.py --output runs/continual

1. split   FLORES-200 dev of languages A and B into whole-document train/validation files with
           `lowres data split` (skipped when DIR/split.json already records both languages). DIR is
           where continual.gin's DataConfig.source points (runs/continual/data).
2. sweep   `lowres sweep sweep.yaml --output=OUTPUT/sweep --parallel=N` as a subprocess: every arm x
           seed is one `lowres train` run, phase A then phase B; a rerun skips finished runs and
           resumes interrupted ones.
3. report  from each run's metrics.jsonl and config.gin: A's held-out loss at the switch, its peak
           over the first k evaluations after the switch (the spike), A's final loss (forgetting =
           final - at switch) and B's final loss; mean and sd over seeds per arm, paired differences
           for the three expected effects; results.md, results.json, curves.png and bars.png in
           --results_dir. Every number comes from the runs.

A rerun after everything finished trains nothing and only rewrites the report (--report_only
does not even start the sweep).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lowres.files import read_json, write_atomic, write_json

DEFAULT_SPEC = HERE / "sweep.yaml"
DEFAULT_RESULTS = HERE / "results"
FLORES = "../shared/data/flores200/dev"
THRESHOLD = 3.0  # an effect counts as reproduced when it exceeds this many seed standard deviations


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- settings read from gin


def gin_assignments(text: str) -> dict[str, Any]:
    """`NAME = VALUE` lines of a gin file whose value is a Python literal (later lines win)."""
    values: dict[str, Any] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][\w./]*)\s*=\s*(.+)$", line.strip())
        if not match:
            continue
        rhs = match.group(2)
        for candidate in (rhs, rhs.split("#", 1)[0]):
            try:
                values[match.group(1)] = ast.literal_eval(candidate.strip())
                break
            except (ValueError, SyntaxError):
                continue
    return values


def spec_settings(spec_path: Path) -> dict[str, Any]:
    """The data source and the languages of the two phases, as the spec's gin files and bindings set
    them (every arm must agree: the recipe compares schedules on one pair of languages)."""
    from lowres.gin_files import find_gin_file
    from lowres.sweeps.spec import expand, load_spec

    spec = load_spec(spec_path)
    found: dict[str, Any] = {}
    for run in expand(spec):
        values: dict[str, Any] = {}
        for name in run.gin_files:
            path = Path(name) if Path(name).is_absolute() else find_gin_file(name)
            values.update(gin_assignments(Path(path).read_text(encoding="utf-8")))
        values.update(run.bindings)
        settings = {key: values.get(key) for key in ("DataConfig.source", "old/Phase.languages", "new/Phase.languages")}
        if found and settings != found:
            raise SystemExit(f"{spec_path}: run {run.name} sets {settings}, another run {found}; "
                             "every arm must train on the same source and languages")
        found = settings
    source = found["DataConfig.source"] or ""
    match = re.fullmatch(r"text:(.+)/\{lang\}\.\{split\}\.txt", source)
    if not match:
        raise SystemExit(f"{spec_path}: DataConfig.source={source!r}; the recipe expects text:DIR/{{lang}}.{{split}}.txt")
    (lang_a,), (lang_b,) = found["old/Phase.languages"], found["new/Phase.languages"]
    data_dir = Path(match.group(1))
    return {"spec": spec, "data_dir": data_dir if data_dir.is_absolute() else REPO / data_dir, "source": source,
            "lang_a": lang_a, "lang_b": lang_b}


# ---------------------------------------------------------------- split and sweep


def make_split(data_dir: Path, languages: Sequence[str], flores: str, fraction: float) -> None:
    record = data_dir / "split.json"
    if record.is_file() and set(languages) <= set(read_json(record).get("languages", {})):
        log(f"split: {data_dir} already holds {', '.join(languages)}; skipped")
        return
    command = [sys.executable, "-m", "lowres.cli", "data", "split", f"flores:{flores}",
               f"--langs={','.join(languages)}", f"--output={data_dir}", f"--heldout_fraction={fraction}"]
    log("split: " + " ".join(command[2:]))
    subprocess.run(command, cwd=REPO, check=True)


def run_sweep(spec_path: Path, sweep_dir: Path, parallel: int) -> int:
    command = [sys.executable, "-m", "lowres.cli", "sweep", str(spec_path), f"--output={sweep_dir}",
               f"--parallel={parallel}"]
    log("sweep: " + " ".join(command[2:]))
    return subprocess.run(command, cwd=REPO, check=False).returncode


# ---------------------------------------------------------------- measures of one run


def read_run(directory: Path, lang_a: str, lang_b: str) -> dict[str, Any] | None:
    """Held-out curves of both languages, the learning rate and the switch step of a finished run."""
    from lowres.sweeps import state

    status = state.read_status(directory) or {}
    if status.get("state") != "done" or not (directory / "metrics.jsonl").is_file():
        return None
    config = gin_assignments((directory / "config.gin").read_text(encoding="utf-8"))
    switch = int(config["old/Phase.num_steps"])
    key_a, key_b = f"eval/{lang_a}/loss", f"eval/{lang_b}/loss"
    steps, loss_a, loss_b, lr, records = [], [], [], {}, []
    for number, line in enumerate((directory / "metrics.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        records.append(record)
        if "learning_rate" in record:
            lr[int(record["step"])] = float(record["learning_rate"])
        if any(key.startswith("eval/") and key.endswith("/loss") for key in record):
            if key_a not in record or key_b not in record:
                raise SystemExit(f"{directory}/metrics.jsonl:{number}: the held-out evaluation at step {record['step']} "
                                 f"lacks {key_a if key_a not in record else key_b}; both languages must be scored "
                                 "in every phase")
            steps.append(int(record["step"]))
            loss_a.append(float(record[key_a]))
            loss_b.append(float(record[key_b]))
    return {"switch": switch, "steps": steps, "a": loss_a, "b": loss_b, "lr": sorted(lr.items()),
            "phase_a_tokens": sum(int(r.get("target_tokens", 0)) for r in records if r.get("step", 0) <= switch
                                  and "learning_rate" in r),
            "seconds": float(status.get("seconds", 0.0)), "started": status.get("started"),
            "finished": status.get("finished")}


def run_measures(curves: Mapping[str, Any], spike_evals: int) -> dict[str, Any]:
    steps, loss_a, loss_b, switch = curves["steps"], curves["a"], curves["b"], curves["switch"]
    before = [i for i, s in enumerate(steps) if s <= switch]
    after = [i for i, s in enumerate(steps) if s > switch]
    if not before or not after:
        raise SystemExit(f"no held-out evaluation on both sides of the switch at step {switch}")
    at = before[-1]
    window = after[:spike_evals]
    peak = max(window, key=lambda i: loss_a[i])
    # The learning rate summed over the spike window's steps (logged every `log_every` steps: each logged
    # value stands for the steps since the previous one), a measure of how far the optimiser moved there.
    logged = [(step, rate) for step, rate in curves["lr"] if switch < step <= steps[window[-1]]]
    previous = [switch] + [step for step, _ in logged[:-1]]
    lr_window = sum(rate * (step - prev) for (step, rate), prev in zip(logged, previous))
    return {
        "switch_step": switch,
        "lr_sum_window": lr_window,
        "switch_eval_step": steps[at],
        "a_at_switch": loss_a[at],
        "a_peak": loss_a[peak],
        "a_peak_step": steps[peak],
        "spike": loss_a[peak] - loss_a[at],
        "spike_window_end": steps[window[-1]],
        "a_final": loss_a[-1],
        "forgetting": loss_a[-1] - loss_a[at],
        "a_recovered": loss_a[peak] - loss_a[-1],  # how far A comes back down after its early peak
        "b_at_switch": loss_b[at],
        "b_final": loss_b[-1],
        "final_step": steps[-1],
    }


# ---------------------------------------------------------------- statistics


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def fmt(mean: float, sd: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


MEASURES = ("a_at_switch", "spike", "a_peak_step", "a_peak", "a_final", "forgetting", "b_final", "lr_sum_window")


def summarize_arms(rows: Sequence[Mapping[str, Any]], arms: Sequence[str]) -> dict[str, dict[str, Any]]:
    summary = {}
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
        for measure in MEASURES:
            mean, sd = mean_sd([r[measure] for r in mine])
            entry[measure] = {"mean": mean, "sd": sd}
        summary[arm] = entry
    return summary


def compare(rows, summary, measure: str, larger: str, smaller: str) -> dict[str, Any] | None:
    """measure(larger) - measure(smaller), expected positive: the mean of the per-seed differences, their
    sd, and the difference in units of the larger of the two arms' seed sd."""
    if larger not in summary or smaller not in summary:
        return None
    by_seed = {(r["arm"], r["seed"]): r[measure] for r in rows}
    seeds = sorted(set(summary[larger]["seeds"]) & set(summary[smaller]["seeds"]))
    diffs = [by_seed[(larger, s)] - by_seed[(smaller, s)] for s in seeds]
    if not diffs:
        return None
    mean, sd = mean_sd(diffs)
    spread = max(summary[larger][measure]["sd"], summary[smaller][measure]["sd"])
    ratio = mean / spread if spread > 0 else float("nan")  # nan with one seed (no spread)
    if math.isnan(ratio):
        verdict = "one seed: no seed spread to judge it by"
    elif ratio >= THRESHOLD:
        verdict = "reproduced"
    elif ratio > 0:
        verdict = "same direction, within 3 seed sd"
    elif ratio > -THRESHOLD:
        verdict = "not reproduced (within 3 seed sd)"
    else:
        verdict = "not reproduced (opposite direction)"
    return {"measure": measure, "arm": larger, "versus": smaller, "seeds": seeds, "differences": diffs,
            "mean": mean, "sd": sd, "seed_spread": spread, "in_seed_sd": ratio,
            "relative": mean / abs(summary[smaller][measure]["mean"]) if summary[smaller][measure]["mean"] else None,
            "all_seeds_agree": all(d > 0 for d in diffs), "verdict": verdict}


SPIKE_PAIRS = (("rewarm", "infinite"), ("rewarm_replay5", "infinite_replay5"))


def window_sensitivity(keyed: Mapping[tuple[str, Any], Mapping[str, Any]], spike_evals: int) -> list[dict[str, Any]]:
    """The spike difference re-warm - infinite (with and without replay) for windows of 2, 4, ... evaluations
    up to `spike_evals`: whether the comparison hinges on the window's length."""
    out = []
    windows = sorted({*range(2, spike_evals + 1, 2), spike_evals})
    for rewarm, infinite in SPIKE_PAIRS:
        seeds = sorted({seed for arm, seed in keyed if arm == rewarm} & {seed for arm, seed in keyed if arm == infinite},
                       key=str)
        if not seeds:
            continue
        for k in windows:
            diffs = [run_measures(keyed[(rewarm, s)], k)["spike"] - run_measures(keyed[(infinite, s)], k)["spike"]
                     for s in seeds]
            mean, sd = mean_sd(diffs)
            end = run_measures(keyed[(rewarm, seeds[0])], k)["spike_window_end"]
            out.append({"arm": rewarm, "versus": infinite, "evaluations": k, "window_end": end, "mean": mean,
                        "paired_sd": sd, "differences": diffs})
    return out


# ---------------------------------------------------------------- figures


LABELS = {"rewarm": "re-warm", "rewarm_replay5": "re-warm + 5% replay", "rewarm_replay25": "re-warm + 25% replay",
          "infinite": "infinite", "infinite_replay5": "infinite + 5% replay"}
COLORS = {"rewarm": "tab:red", "rewarm_replay5": "tab:orange", "rewarm_replay25": "tab:olive",
          "infinite": "tab:blue", "infinite_replay5": "tab:cyan"}


def mean_curve(curves: Sequence[Mapping[str, Any]], key: str):
    import numpy as np

    steps = curves[0]["steps"]
    if any(c["steps"] != steps for c in curves):
        raise SystemExit("the seeds of one arm evaluated at different steps")
    values = np.array([c[key] for c in curves])
    return np.array(steps), values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(steps))


def plot_curves(by_arm: Mapping[str, list], setup: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowres.figures import save_png

    switch, window_end = setup["switch_step"], setup["spike_window_end"]
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    panels = [("a", f"A = {setup['lang_a']}: held-out loss"), ("b", f"B = {setup['lang_b']}: held-out loss")]
    for ax, (key, title) in zip(axes, panels):
        for arm, curves in by_arm.items():
            steps, mean, sd = mean_curve(curves, key)
            ax.plot(steps, mean, color=COLORS.get(arm), label=LABELS.get(arm, arm), lw=1.6)
            ax.fill_between(steps, mean - sd, mean + sd, color=COLORS.get(arm), alpha=0.15, lw=0)
        ax.axvline(switch, color="black", ls="--", lw=1)
        ax.axvspan(switch, window_end, color="grey", alpha=0.08)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("nats per token (mean over seeds, band ±1 sd)")
    axes[0].text(switch, axes[0].get_ylim()[1], f" switch (step {switch})", va="top", fontsize=8)
    for arm, curves in by_arm.items():
        steps, rates = zip(*curves[0]["lr"])
        axes[2].plot(steps, rates, color=COLORS.get(arm), label=LABELS.get(arm, arm), lw=1.4)
    axes[2].axvline(switch, color="black", ls="--", lw=1)
    axes[2].set_title("learning rate")
    axes[2].set_xlabel("step")
    figure.suptitle(f"Continual pretraining {setup['lang_a']} -> {setup['lang_b']}; grey: the {setup['spike_evals']} "
                    "evaluations after the switch where the spike is measured", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    save_png(figure, path)


def plot_bars(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowres.figures import save_png

    arms = list(summary)
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    titles = {"spike": "A's spike: peak in the window - at switch", "forgetting": "A's forgetting: final - at switch",
              "b_final": "B's final held-out loss (the axis does not start at 0)"}
    for ax, (measure, title) in zip(axes, titles.items()):
        means = [summary[a][measure]["mean"] for a in arms]
        sds = [0.0 if math.isnan(summary[a][measure]["sd"]) else summary[a][measure]["sd"] for a in arms]
        ax.bar(range(len(arms)), means, yerr=sds, capsize=4, color=[COLORS.get(a, "grey") for a in arms], alpha=0.8)
        for i, arm in enumerate(arms):
            points = [r[measure] for r in rows if r["arm"] == arm]
            ax.scatter([i] * len(points), points, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(arms)), [LABELS.get(a, a) for a in arms], rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("nats per token")
        ax.axhline(0, color="black", lw=0.6)
        if measure == "b_final":
            low = min(m - s for m, s in zip(means, sds))
            high = max(m + s for m, s in zip(means, sds))
            ax.set_ylim(low - 0.5 * (high - low + 0.01), high + 0.5 * (high - low + 0.01))
    figure.suptitle("mean ± sd over seeds; dots: seeds", fontsize=10)
    figure.tight_layout()
    save_png(figure, path)


# ---------------------------------------------------------------- report


def effect_line(c: Mapping[str, Any] | None, what: str) -> str:
    if c is None:
        return f"{what}: not measured (an arm is missing)"
    agree = "every seed agrees" if c["all_seeds_agree"] else "not every seed agrees"
    spread = "n/a" if math.isnan(c["in_seed_sd"]) else f"{c['in_seed_sd']:.1f}"
    return (f"{what}: {c['mean']:+.3f} nats (paired over seeds {c['seeds']}: sd {c['sd']:.3f}; {spread} x the larger "
            f"arm's seed sd {c['seed_spread']:.3f}; {agree}) -> **{c['verdict']}**")


def conclusions(summary, effects, setup) -> list[str]:
    """One paragraph per expected effect: the verdict, the numbers behind it and, where the effect is not
    reproduced, the reason the runs themselves show. Every number is read from the runs."""
    s = summary

    def m(arm, measure):
        return s[arm][measure]["mean"] if arm in s else float("nan")

    def sd(arm, measure):
        return s[arm][measure]["sd"] if arm in s else float("nan")

    out = []
    window = f"steps {setup['switch_step'] + setup['eval_every']}-{setup['spike_window_end']}"
    lr_note = (f"Over the window ({window}) the learning rate sums to {m('rewarm', 'lr_sum_window'):.3f} with "
               f"re-warming (its warm-up starts from 0) and to {m('infinite', 'lr_sum_window'):.3f} on the infinite "
               f"schedule ({m('rewarm', 'lr_sum_window') / m('infinite', 'lr_sum_window'):.1f}x).")

    # 1. re-warming raises A's loss
    rise = effects.get("rewarm_spike_vs_infinite")
    replay_pair = effects.get("rewarm_replay5_spike_vs_infinite_replay5")
    text = (f"**1. Re-warming raises A's loss.** After the switch A's loss rises by {m('rewarm', 'spike'):.2f} ± "
            f"{sd('rewarm', 'spike'):.2f} nats within the window with re-warming (peak at step "
            f"{m('rewarm', 'a_peak_step'):.0f} on average). ")
    if "infinite" in s:
        share = m("infinite", "spike") / m("rewarm", "spike") if m("rewarm", "spike") else float("nan")
        text += (f"Without re-warming (infinite schedule, constant LR across the switch) it rises by "
                 f"{m('infinite', 'spike'):.2f} ± {sd('infinite', 'spike'):.2f}, {share:.0%} as much"
                 + (", so most of the rise is the shift to B itself, not the learning rate. " if share >= 0.5 else ". ")
                 + effect_line(rise, "Re-warming's own part (spike re-warm - spike infinite)") + ".")
    if replay_pair:
        text += (f" With 5% replay, where A's loss comes back down after its peak (by "
                 f"{m('rewarm_replay5', 'a_peak') - m('rewarm_replay5', 'a_final'):.2f} nats with re-warming, "
                 f"{m('infinite_replay5', 'a_peak') - m('infinite_replay5', 'a_final'):.2f} without), "
                 + effect_line(replay_pair, "the spike re-warm + 5% replay - infinite + 5% replay") + ".")
    out.append(text)

    # 2. replay cuts the forgetting
    five, quarter = effects.get("forgetting_rewarm_vs_replay5"), effects.get("forgetting_rewarm_vs_replay25")
    cost = effects.get("b_final_replay25_vs_rewarm")
    text = (f"**2. Replay cuts the forgetting.** A's forgetting (final - at switch) is {m('rewarm', 'forgetting'):.2f} "
            f"± {sd('rewarm', 'forgetting'):.2f} nats without replay, {m('rewarm_replay5', 'forgetting'):.2f} ± "
            f"{sd('rewarm_replay5', 'forgetting'):.2f} with 5% and {m('rewarm_replay25', 'forgetting'):.2f} ± "
            f"{sd('rewarm_replay25', 'forgetting'):.2f} with 25% replay. "
            + effect_line(five, "5% replay's cut") + "; " + effect_line(quarter, "25% replay's cut") + ". "
            f"The price on B: its final loss is {m('rewarm', 'b_final'):.3f} without replay, "
            f"{m('rewarm_replay5', 'b_final'):.3f} with 5% and {m('rewarm_replay25', 'b_final'):.3f} with 25%"
            + (f" (25% replay costs B {cost['mean']:+.3f} ± {cost['sd']:.3f} nats paired, {cost['in_seed_sd']:.1f} x the "
               "seed sd)." if cost else "."))
    out.append(text)

    # 3. the infinite schedule avoids the spike at the switch
    if "infinite" in s:
        inf = effects.get("rewarm_spike_vs_infinite")
        noise = sd("infinite", "spike")
        avoided = not math.isnan(noise) and m("infinite", "spike") < THRESHOLD * max(noise, 1e-9)
        text = (f"**3. The infinite schedule avoids the spike at the switch.** Its rise is {m('infinite', 'spike'):.2f} "
                f"against {m('rewarm', 'spike'):.2f} with re-warming: "
                + ("avoided (within 3 seed sd of no rise). " if avoided else "**not avoided**. ")
                + effect_line(inf, "The reduction (re-warm - infinite)") + ".")
        if replay_pair:
            text += (f" With 5% replay: {m('infinite_replay5', 'spike'):.2f} (infinite) against "
                     f"{m('rewarm_replay5', 'spike'):.2f} (re-warm); "
                     + effect_line(replay_pair, "the reduction") + ".")
        every_window = effects.get("spike_by_window") or []
        windows = [w for w in every_window if w["arm"] == "rewarm"]
        if windows:
            negative = [str(w["evaluations"]) for w in windows if w["mean"] < 0]
            positive = [str(w["evaluations"]) for w in windows if w["mean"] >= 0]
            ratios = [abs(w["mean"]) / w["paired_sd"] for w in every_window if w["paired_sd"] > 0]
            text += " Without replay the sign of the difference depends on the window (table below): "
            text += "; ".join(part for part in (
                f"negative for windows of {', '.join(negative)} evaluations" if negative else "",
                f"positive for {', '.join(positive)}" if positive else "") if part) + ". "
            if windows[0]["mean"] < 0:
                text += (f"In the first {windows[0]['evaluations']} evaluations the infinite arm rises more: its constant "
                         "rate acts from the first step, while re-warming starts its warm-up from 0. ")
            if ratios:
                text += f"No window, with or without replay, gives a difference above {max(ratios):.1f} x its paired sd."
        if not avoided:
            reach = {arm: m(arm, "spike") / m(arm, "forgetting") for arm in ("rewarm", "infinite")
                     if m(arm, "forgetting") > 0}
            text += (" Why: from the switch on every step trains on B (or 95% B), another script, and the small model "
                     f"loses A at any learning rate; the infinite schedule still runs at "
                     f"{setup['infinite'].get('constant_fraction')} eta_max across the switch. " + lr_note)
            if len(reach) == 2:
                text += (f" Without replay A's rise is mostly done inside the window: it reaches "
                         f"{reach['rewarm']:.0%} (re-warm) and {reach['infinite']:.0%} (infinite) of the run's "
                         "final forgetting there, so the learning rate changes how fast A is lost more than how much.")
        text += (f" The arms do not start phase B from the same point: the cosine arms reach the switch annealed to "
                 f"eta_min (A at {m('rewarm', 'a_at_switch'):.3f}), the infinite arm at its constant LR (A at "
                 f"{m('infinite', 'a_at_switch'):.3f}); each rise is measured from its own run's loss at the switch. "
                 f"B's final loss: {m('infinite', 'b_final'):.3f} (infinite, annealed over the last "
                 f"{setup['final_step'] - setup['infinite'].get('anneal_start_step', setup['final_step'])} steps) "
                 f"against {m('rewarm', 'b_final'):.3f} (re-warm).")
        out.append(text)
    return out


def write_report(results_dir: Path, setup: Mapping[str, Any], rows, summary, effects, timing, command: str) -> None:
    arms = list(summary)
    lines = [
        "# Continual pretraining: re-warming, replay and the infinite schedule",
        "",
        ("Issue #19 recipe 3, METHODS.md section 6 (\"Simple and Scalable Strategies to Continually Pre-train Large "
        "Language Models\"). Written by `experiments/continual/run.py` from the runs' `metrics.jsonl`; rerun it to "
        "refresh."),
        "",
        "```",
        command,
        "```",
        "",
        "## Setup",
        "",
        (f"- Data: FLORES-200 dev, whole documents held out with `lowres data split` (fraction "
        f"{setup['heldout_fraction']}, the same documents in both languages): A = {setup['lang_a']} "
        f"({setup['split'][setup['lang_a']]}), B = {setup['lang_b']} ({setup['split'][setup['lang_b']]}). "
        f"Source `{setup['source']}`; one SentencePiece vocabulary trained on both languages."),
        "- Tokens of training text under the shared vocabulary: "
        + ", ".join(f"{lang} {n:,}" for lang, n in setup["train_tokens"].items())
        + f"; phase A trains on {setup['phase_a_tokens']:,} target tokens, {setup['phase_a_epochs']:.1f} epochs of A.",
        (f"- Model and run: {setup['model']}; causal LM, batch {setup['batch_size']} x {setup['targets_length']} "
        f"tokens, AdamW, eta_max {setup['learning_rate']:g}, warm-up {setup['warmup_steps']} steps. One `lowres train` "
        f"run per arm and seed: A for steps 0-{setup['switch_step']}, B for steps {setup['switch_step']}-"
        f"{setup['final_step']} (replay: that share of B-phase examples drawn from A's training data)."),
        ("- Arms: **re-warm** = cosine to eta_min = 0.1 eta_max over phase A, then the schedule restarts at the "
        "switch (warm-up from 0 to eta_max, cosine to eta_min at the end); **+ replay** the same with 5% or 25% "
        "of phase B's examples from A; **infinite** = warm-up, cosine cool-down over "
        f"{setup['infinite'].get('cooldown_steps')} steps to {setup['infinite'].get('constant_fraction')} eta_max, "
        f"constant across the switch, exponential anneal to eta_min from step {setup['infinite'].get('anneal_start_step')} "
        "(no re-warming); **infinite + 5% replay** is not in the issue's list: it gives the spike a like-for-like "
        "comparison where A's loss recovers after the switch."),
        f"- Seeds {setup['seeds']}, each bound to {', '.join(setup['seed_binding'])} (the initialisation"
        + (" and the data order" if "DataConfig.seed" in setup["seed_binding"] else "; the data order is the same")
        + "). With one seed the three re-warm arms are identical up to the switch.",
        (f"- Held-out loss of both languages every {setup['eval_every']} steps ({setup['eval_batches']} batches of "
        "each language's validation documents, the same every time; nats per token of the shared vocabulary)."),
        (f"- Measures: A at the switch = A's held-out loss at step {setup['switch_step']}; spike = A's maximum over "
        f"the first {setup['spike_evals']} evaluations after the switch (steps {setup['switch_step'] + setup['eval_every']}-"
        f"{setup['spike_window_end']}) minus A at the switch; forgetting = A's final loss minus A at the switch; "
        "B final = B's held-out loss at the last step. An effect is called reproduced when its mean paired "
        f"difference exceeds {THRESHOLD:g} x the larger seed sd of the two arms."),
        (f"- Cost: {timing['runs']} runs, {timing['train_seconds']:.0f} s of training-process time in all "
        f"({timing['mean_run_seconds']:.0f} s per run), {timing['wall_seconds']:.0f} s of wall time with "
        f"--parallel={timing['parallel']} on this machine, shared with other jobs while it ran."),
        "",
        f"## Results (mean ± sd over {len(setup['seeds'])} seeds, nats per token)",
        "",
        "| arm | A at switch | spike | A peak step | A final | forgetting | B final |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        e = summary[arm]
        lines.append(f"| {LABELS.get(arm, arm)} | {fmt(**e['a_at_switch'])} | {fmt(**e['spike'])} | "
                     f"{fmt(e['a_peak_step']['mean'], e['a_peak_step']['sd'], 0)} | {fmt(**e['a_final'])} | "
                     f"{fmt(**e['forgetting'])} | {fmt(**e['b_final'])} |")
    lines += ["", "![held-out curves](curves.png)", "", "![spike, forgetting, B final](bars.png)", "",
              "## Expected effects", ""]
    verdicts = [
        ("re-warming raises A's loss beyond the shift's own rise (spike re-warm - infinite)",
         effects.get("rewarm_spike_vs_infinite")),
        ("... the same with 5% replay", effects.get("rewarm_replay5_spike_vs_infinite_replay5")),
        ("5% replay cuts the forgetting (re-warm - re-warm + 5%)", effects.get("forgetting_rewarm_vs_replay5")),
        ("25% replay cuts the forgetting (re-warm - re-warm + 25%)", effects.get("forgetting_rewarm_vs_replay25")),
        ("the infinite schedule avoids the spike (its spike, and re-warm - infinite)",
         effects.get("rewarm_spike_vs_infinite")),
    ]
    lines += ["| expected effect | measured difference (nats) | x seed sd | verdict |", "|---|---|---|---|"]
    for what, c in verdicts:
        if c is None:
            lines.append(f"| {what} | - | - | not measured |")
            continue
        verdict = c["verdict"]
        if what.startswith("the infinite"):
            what = f"{what}: {summary['infinite']['spike']['mean']:.2f} vs {summary['rewarm']['spike']['mean']:.2f}"
            noise = summary["infinite"]["spike"]["sd"]
            if not (noise > 0 and summary["infinite"]["spike"]["mean"] < THRESHOLD * noise):
                verdict = f"not avoided; reduction {verdict}"
        lines.append(f"| {what} | {c['mean']:+.3f} ± {c['sd']:.3f} | {c['in_seed_sd']:.1f} | {verdict} |")
    lines.append("")
    for paragraph in conclusions(summary, effects, setup):
        lines += [paragraph, ""]
    windows = effects.get("spike_by_window") or []
    if windows:
        lines += ["Spike difference re-warm - infinite (nats, mean ± paired sd over seeds) by the window's length:", "",
                  "| evaluations after the switch | window end | re-warm - infinite | re-warm + 5% - infinite + 5% |",
                  "|---|---|---|---|"]
        for k in sorted({w["evaluations"] for w in windows}):
            cells = {w["arm"]: f"{w['mean']:+.3f} ± {w['paired_sd']:.3f}" for w in windows if w["evaluations"] == k}
            end = next(w["window_end"] for w in windows if w["evaluations"] == k)
            lines.append(f"| {k} | {end} | {cells.get('rewarm', '-')} | {cells.get('rewarm_replay5', '-')} |")
        lines.append("")
    lines += [
        "## What this run can and cannot show",
        "",
        (f"- It can show the direction and rough size of each effect for one strong shift ({setup['lang_a']} to "
        f"{setup['lang_b']}: {setup['b_tokens_seen_in_a']:.0%} of B's training tokens are pieces that occur in A's "
        "text) at toy scale, with the seed spread as the yardstick."),
        (f"- The model is tiny: {setup['model']}; each phase sees FLORES dev only "
        f"({setup['train_tokens'][setup['lang_a']]:,} tokens of A, {setup['phase_a_epochs']:.0f} epochs). A model this "
        "small has little room for both languages, so forgetting is far larger than in the paper's "
        "much larger models; without replay the rise of A's loss after the switch is forgetting from the shift "
        "and re-warming's spike together, and only the infinite arm's comparison separates them. The 5%-replay pair "
        "is where a transient spike (A's loss coming back down) can be told apart."),
        ("- The infinite arm differs from the cosine arms before the switch too (it is not annealed at the switch), "
        "so its A-at-switch and B-final differ for that reason as well."),
        (f"- {len(setup['seeds'])} seeds give a rough sd only. Held-out loss is on a fixed set of "
        f"{setup['eval_batches']} batches per language, so the curves carry no evaluation-sampling noise."),
        ("- It cannot say which replay share matches retraining on A+B (no joint-training baseline here) or how the "
        "effects scale with model size, data size or a weaker shift."),
        "",
    ]
    write_atomic(results_dir / "results.md", "\n".join(lines))


def train_tokens(vocabulary: Path, data_dir: Path, lang_a: str, lang_b: str) -> tuple[dict[str, int], float]:
    """Tokens (with one end-of-document token each) of both languages' training documents under the run's
    SentencePiece vocabulary, and the share of B's tokens whose piece also occurs in A's text."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(vocabulary))
    counts, pieces = {}, {}
    for lang in (lang_a, lang_b):
        lines = [line for line in (data_dir / f"{lang}.train.txt").read_text(encoding="utf-8").splitlines() if line]
        encoded = processor.encode(lines)
        counts[lang] = sum(len(ids) + 1 for ids in encoded)
        pieces[lang] = [i for ids in encoded for i in ids]
    seen = set(pieces[lang_a])
    return counts, sum(i in seen for i in pieces[lang_b]) / max(len(pieces[lang_b]), 1)


def recipe_setup(settings, rows_curves, spike_evals: int, sweep_dir: Path) -> dict[str, Any]:
    """Fixed settings read from the first finished run's config.gin and the split's record."""
    first = next(iter(rows_curves))
    config = gin_assignments((sweep_dir / "runs" / first / "config.gin").read_text(encoding="utf-8"))
    lengths = read_json(settings["data_dir"] / "split.json")
    split = {lang: (f"{v['train']['documents']} train / {v['validation']['documents']} held-out documents, "
                    f"{v['train']['bytes']:,} / {v['validation']['bytes']:,} bytes")
             for lang, v in lengths["languages"].items()}
    model = read_json(sweep_dir / "runs" / first / "lowres.json")["model"]
    curves = rows_curves[first]
    tokens, shared = train_tokens(sweep_dir / "runs" / first / "vocab" / "spm.model", settings["data_dir"],
                                  settings["lang_a"], settings["lang_b"])
    infinite = {}
    for run in settings["spec"].arms:
        if run.bindings.get("OptimizerConfig.schedule") == "infinite":
            infinite = {k.split(".", 1)[1]: v for k, v in run.bindings.items() if k.startswith("OptimizerConfig.")}
            break
    return {
        "lang_a": settings["lang_a"], "lang_b": settings["lang_b"], "source": settings["source"],
        "heldout_fraction": lengths.get("fraction"), "split": split,
        "model": (f"decoder-only `{config.get('ModelConfig.preset')}` preset ({model['num_layers']} layers, d_model "
                  f"{model['d_model']}, d_ff {model['d_ff']}, vocabulary {model['vocab_size']})"),
        "train_tokens": tokens, "phase_a_tokens": curves["phase_a_tokens"],
        "phase_a_epochs": curves["phase_a_tokens"] / tokens[settings["lang_a"]],
        "batch_size": config.get("DataConfig.batch_size"), "targets_length": config.get("DataConfig.targets_length"),
        "learning_rate": config.get("OptimizerConfig.learning_rate"),
        "warmup_steps": config.get("OptimizerConfig.warmup_steps"),
        "switch_step": curves["switch"], "final_step": curves["steps"][-1],
        "eval_every": config.get("EvalConfig.every_steps"), "eval_batches": config.get("EvalConfig.batches_per_task"),
        "spike_evals": spike_evals, "spike_window_end": curves["switch"] + spike_evals * config.get("EvalConfig.every_steps"),
        "seeds": list(settings["spec"].seeds), "seed_binding": list(settings["spec"].seed_binding),
        "infinite": infinite, "b_tokens_seen_in_a": shared,
    }


def report(args, settings, sweep_dir: Path) -> int:
    manifest = read_json(sweep_dir / "manifest.json")
    rows, curves_by_run, by_arm, keyed = [], {}, {}, {}
    missing = []
    for run in manifest["runs"]:
        curves = read_run(sweep_dir / "runs" / run["name"], settings["lang_a"], settings["lang_b"])
        if curves is None:
            missing.append(run["name"])
            continue
        arm = run["swept"].get("arm", "")
        seed = run["swept"].get("seed", run["bindings"].get(settings["spec"].seed_binding[0]))
        measures = run_measures(curves, args.spike_evals)
        rows.append({"run": run["name"], "arm": arm, "seed": seed, **measures, "seconds": round(curves["seconds"], 1)})
        curves_by_run[run["name"]] = curves
        by_arm.setdefault(arm, []).append(curves)
        keyed[(arm, seed)] = curves
    if missing:
        log(f"report: {len(missing)} run(s) not finished, left out: {', '.join(missing)}")
    if not rows:
        log("report: no finished run yet")
        return 1
    arms = list(dict.fromkeys(a.name for a in settings["spec"].arms))
    summary = summarize_arms(rows, arms)
    effects = {
        "rewarm_spike_vs_infinite": compare(rows, summary, "spike", "rewarm", "infinite"),
        "rewarm_replay5_spike_vs_infinite_replay5": compare(rows, summary, "spike", "rewarm_replay5",
                                                            "infinite_replay5"),
        "forgetting_rewarm_vs_replay5": compare(rows, summary, "forgetting", "rewarm", "rewarm_replay5"),
        "forgetting_rewarm_vs_replay25": compare(rows, summary, "forgetting", "rewarm", "rewarm_replay25"),
        "forgetting_replay5_vs_replay25": compare(rows, summary, "forgetting", "rewarm_replay5", "rewarm_replay25"),
        "b_final_replay25_vs_rewarm": compare(rows, summary, "b_final", "rewarm_replay25", "rewarm"),
    }
    effects["spike_by_window"] = window_sensitivity(keyed, args.spike_evals)
    setup = recipe_setup(settings, curves_by_run, args.spike_evals, sweep_dir)
    starts = [c["started"] for c in curves_by_run.values() if c["started"]]
    ends = [c["finished"] for c in curves_by_run.values() if c["finished"]]
    timing = {"runs": len(rows), "train_seconds": sum(r["seconds"] for r in rows),
              "mean_run_seconds": statistics.fmean(r["seconds"] for r in rows),
              "wall_seconds": (max(ends) - min(starts)) if starts and ends else 0.0, "parallel": args.parallel}
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    command = f"python experiments/continual/run.py --output {args.output}"
    write_json(results_dir / "results.json", {
        "command": command, "setup": setup, "threshold_seed_sd": THRESHOLD, "timing": timing,
        "arms": summary, "effects": effects, "runs": rows, "missing_runs": missing,
    })
    plot_curves({arm: curves for arm, curves in by_arm.items()}, setup, results_dir / "curves.png")
    plot_bars(summary, rows, results_dir / "bars.png")
    write_report(results_dir, setup, rows, summary, effects, timing, command)
    for arm, e in summary.items():
        log(f"{arm:18s} A@switch {fmt(**e['a_at_switch'])}  spike {fmt(**e['spike'])}  forgetting "
            f"{fmt(**e['forgetting'])}  B final {fmt(**e['b_final'])}")
    log(f"report: {results_dir}/results.md, results.json, curves.png, bars.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Continual pretraining recipe (issue #19, METHODS.md section 6): split FLORES-200 dev, train "
                    "every arm x seed with `lowres sweep` (resumable; finished runs are skipped), and write the "
                    "report. A rerun after completion only rewrites the report.")
    parser.add_argument("--output", default="runs/continual", help="where the sweep goes: OUTPUT/sweep (default "
                        "runs/continual); the split goes where the spec's DataConfig.source points")
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="the sweep spec (default: sweep.yaml beside this file)")
    parser.add_argument("--results_dir", default=str(DEFAULT_RESULTS), help="where results.md, results.json and the "
                        "PNGs go (default: experiments/continual/results)")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at a time (default 2)")
    parser.add_argument("--spike_evals", type=int, default=10, help="the spike is A's maximum over this many "
                        "evaluations after the switch (default 10)")
    parser.add_argument("--flores", default=FLORES, help=f"FLORES-200 dev directory (default {FLORES})")
    parser.add_argument("--heldout_fraction", type=float, default=0.2)
    parser.add_argument("--report_only", action="store_true", help="write the report from the finished runs; train nothing")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output = output if output.is_absolute() else REPO / output
    settings = spec_settings(Path(args.spec))
    sweep_dir = output / "sweep"
    status = 0
    if not args.report_only:
        make_split(settings["data_dir"], [settings["lang_a"], settings["lang_b"]], args.flores, args.heldout_fraction)
        status = run_sweep(Path(args.spec).resolve(), sweep_dir, args.parallel)
        if status:
            log(f"sweep exited with {status}; reporting the runs that finished")
    return report(args, settings, sweep_dir) or status


if __name__ == "__main__":
    sys.exit(main())
