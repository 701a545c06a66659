"""Every shell command README.md shows, run as written at tiny sizes (the project rule: every command the
README shows must work as written).

`test_every_readme_command_is_run_or_skipped` reads README.md (the ```bash blocks, `\\` continuations joined,
`&&` chains split, trailing comments dropped; and inline `lowres ...`-style code spans) and fails when a
command is neither in RUN nor in SKIP, or when an entry there no longer appears in the README.

`test_readme_commands_work_as_written` runs every RUN command in a temporary "clone": a directory whose
`gin_configs` links to the repository's, so `runs/...`, `eng50.txt`, `report.json`, `synth/...` land in tmp,
and whose `../shared/data` is the repository's `../shared/data` (FLORES-200 dev) or, where that is absent
(a fresh clone, CI), a FLORES-like directory built here with the languages the commands name. The only
changes to a command: `lowres` / `.venv/bin/lowres` becomes `python -m lowres.cli`; `Cmd.fill` fills a
placeholder (`DIR`) or keeps an optional `[...]` argument; `Cmd.extra` appends tiny sizes (gin bindings for
`train`, `--max_length`, `--translate_limit`, bench's `--steps`/`--shape`; argparse keeps the last value).
Runs the README names but no README command trains (runs/mt, runs/a, runs/b, runs/x, runs/mt_eng_pan) are
links to the one shared tiny run that the Quick start's own train command trains. Independent commands run
JOBS at a time; one test reports every command that failed, with its error, so pytest-xdist keeps it on
one worker.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_FLORES = SHARED_DATA / "flores200" / "dev"
JOBS = 3  # commands at a time: each is mostly one busy thread (imports, tracing, XLA compile)
TIMEOUT_S = 600
SHELL_WORDS = ("lowres", ".venv/bin/lowres", "python", "python3", ".venv/bin/python", "pip", ".venv/bin/pip",
               "tensorboard", "tfds", "gcloud", ".ci/run")  # inline code spans starting with these are commands

# ---------------------------------------------------------------- what README.md shows


def _cut_comment(line: str) -> str:
    """`line` without a shell comment (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _split_and(line: str) -> list[str]:
    """`a && b` -> [a, b] (outside quotes)."""
    parts, quote, start = [], None, 0
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif line.startswith("&&", i):
            parts.append(line[start:i])
            start = i + 2
    return [*parts, line[start:]]


def readme_commands(text: str | None = None) -> list[str]:
    """Every command README.md shows, in order, whitespace-normalised: each logical line of a ```bash block
    (and each part of an `&&` chain), then each inline code span that starts with one of SHELL_WORDS."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    fences = re.compile(r"^([ \t]*)```(\w*)[ \t]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
    for fence in fences.finditer(text):
        if fence.group(2) not in ("bash", "sh", "shell"):
            continue
        logical, pending = [], ""
        for line in fence.group(3).splitlines():
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            logical.append(line)
        for line in logical:
            commands += [" ".join(part.split()) for part in _split_and(_cut_comment(line))]
    prose = fences.sub("", text)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if span.split()[0] in SHELL_WORDS:
            commands.append(" ".join(span.split()))
    return list(dict.fromkeys(c for c in commands if c))


# ---------------------------------------------------------------- what this file runs

# Tiny sizes for `lowres train` (cf. gin_configs/smoke.gin): 2 steps of the tiny preset on 2 x (32 + 32)
# tokens; the vocabulary trained on at most 2,000 sentences.
TINY = ("--gin.TrainConfig.num_steps=2", "--gin.TrainConfig.log_every=1", "--gin.DataConfig.batch_size=2",
        "--gin.DataConfig.targets_length=32", "--gin.DataConfig.shuffle_buffer_size=16",
        '--gin.ModelConfig.preset="tiny"', "--gin.VocabularyConfig.vocab_size=1000",
        "--gin.VocabularyConfig.max_sentences=2000", "--gin.CheckpointConfig.save_interval_steps=2")
TINY_ENC_DEC = (*TINY, "--gin.DataConfig.inputs_length=32")
# The quickstart's 20 languages cost ~1 s each of seqio task building per train; three keep its
# English<->X translation and the languages the README's data sample / translate commands name.
QUICKSTART_TINY = (*TINY_ENC_DEC, '--gin.DataConfig.languages=["eng","pan","yor"]')
FLORES_TINY = (*TINY_ENC_DEC, '--gin.DataConfig.languages=["eng","pan"]')  # not all 204 FLORES languages
# The run every reading command uses; README names these other runs without a command that trains them.
SHARED_RUN = "runs/quickstart"
RUN_ALIASES = ("mt", "a", "b", "x", "mt_eng_pan")
FAKE_FLORES_LANGS = ("eng", "pan", "amh", "khm", "yor")  # the FLORES languages README commands name


@dataclasses.dataclass(frozen=True)
class Cmd:
    id: str
    readme: str  # exactly as readme_commands() gives it
    extra: tuple[str, ...] = ()  # tiny sizes, appended
    needs: tuple[str, ...] = ()  # commands whose outputs it reads
    fill: tuple[tuple[str, str], ...] = ()  # README token -> what runs (a placeholder, an optional [...])
    shell: bool = False  # run through bash -c as written (redirections)

    def argv(self) -> list[str]:
        if self.shell:
            return ["bash", "-c", self.readme]
        fill = dict(self.fill)
        tokens = [fill.get(token, token) for token in shlex.split(self.readme)]
        assert tokens[0] in ("lowres", ".venv/bin/lowres"), self.readme
        return [sys.executable, "-m", "lowres.cli", *tokens[1:], *self.extra]


QS = "quickstart_train"
RUN = (
    # Quick start 1 (after its venv and pip install, which SKIP lists).
    Cmd(QS, ".venv/bin/lowres train --gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart",
        QUICKSTART_TINY),
    Cmd("head_eng50", "head -50 ../shared/data/flores200/dev/eng.dev > eng50.txt", shell=True),
    Cmd("tinylm_train", "lowres train --gin_file=translationese/tinylm.gin --model_dir=runs/tinylm_pan "
        "--gin.DataConfig.source='\"flores:../shared/data/flores200/dev\"' --gin.DataConfig.languages='[\"pan\"]'",
        TINY),
    Cmd("qs_eval_train", "lowres train --gin_file=quickstart --model_dir=runs/qs_eval --gin.EvalConfig.every_steps=100",
        (*QUICKSTART_TINY, "--gin.EvalConfig.batches_per_task=1", "--gin.EvalConfig.max_documents=2",
         "--gin.EvalConfig.decode_examples=2")),
    Cmd("flores_train", "lowres train --gin_file=quickstart.gin --gin_file=corpora/flores.gin --model_dir=runs/flores",
        FLORES_TINY),
    Cmd("translationese_build", "lowres translationese build --source=text:en/*.txt --layout=paragraphs "
        "--src=eng_Latn --tgt=pan_Guru --translator=lowres:runs/mt_eng_pan --beam=5 --output=synth/pan",
        ("--max_length=8",), needs=(QS,)),
    Cmd("quickstart_eval", ".venv/bin/lowres eval --model_dir=runs/quickstart --data=builtin "
        "--output=runs/quickstart/eval.json", needs=(QS,)),
    Cmd("continued_train", "lowres train --gin_file=quickstart --model_dir=runs/continued "
        "--gin.InitConfig.checkpoint=\"'runs/quickstart'\" --gin.InitConfig.optimizer_state=False",
        QUICKSTART_TINY, needs=(QS,)),
    Cmd("eval_ab", "lowres eval --model_dir=runs/a --model_dir=runs/b --data=flores:../shared/data/flores200/dev "
        "--langs=eng_Latn,pan_Guru --translate=eng_Latn-pan_Guru,pan_Guru-eng_Latn --translate_limit=200 "
        "--output=eval/ab.json", ("--translate_limit=2",), needs=(QS,)),
    Cmd("eval_flores_translate", ".venv/bin/lowres eval --model_dir=runs/quickstart "
        "--data=flores:../shared/data/flores200/dev --langs=eng_Latn,pan_Guru --translate=eng-pan,pan-eng "
        "--translate_limit=50 --output=runs/quickstart/flores.json", ("--translate_limit=2",), needs=(QS,)),
    Cmd("translate_eng50", ".venv/bin/lowres translate --model_dir=runs/quickstart --src=eng_Latn --tgt=pan_Guru "
        "--input=eng50.txt --output=pan50.txt", ("--max_length=8",), needs=(QS, "head_eng50")),
    Cmd("translationese_score", "lowres translationese score --input=synth/pan --model_dir=runs/tinylm_pan",
        needs=("translationese_build", "tinylm_train")),
    Cmd("translationese_filter", "lowres translationese filter --input=synth/pan --output=synth/pan_kept "
        "--keep_percent=70", needs=("translationese_score",)),
    Cmd("translate_beam", "lowres translate --model_dir=runs/mt --src=eng_Latn --tgt=pan_Guru --input=eng.txt "
        "--output=pan.txt --beam=4", ("--max_length=8",), needs=(QS,)),
    Cmd("generate", 'lowres generate --model_dir=runs/quickstart --prompt="All human beings" --mode=S2S '
        "--method=contrastive", ("--max_length=8",), needs=(QS,)),
    Cmd("data_sample_ul2", "lowres data sample ul2 -n 3"),
    Cmd("data_sample_task", "lowres data sample builtin.yor_Latn.span_3_0p15_nlu --model_dir=runs/quickstart",
        needs=(QS,)),
    Cmd("data_describe_flores", "lowres data describe flores200 --gin_file=corpora/flores.gin --tokens=10000000 "
        "[--model_dir=runs/x]", fill=(("[--model_dir=runs/x]", "--model_dir=runs/x"),), needs=(QS,)),
    Cmd("vocab_report", "lowres vocab report --model_dir=runs/quickstart --data=flores:../shared/data/flores200/dev "
        "--langs=pan,amh,eng,khm,yor --output=report.json", needs=(QS,)),
    Cmd("bench_checkpoint", "lowres bench checkpoint", ("--shape", "tiny", "--steps", "1")),
    Cmd("data_describe_builtin", "lowres data describe builtin"),
    Cmd("bench_data_steady", "lowres bench data --parts steady --executors indexed",
        ("--objective", "r_and_s", "--architecture", "encoder_decoder", "--steps", "5",
         "--trainer_tokens_per_sec", "5000")),
    Cmd("data_cache", "lowres data cache flores:../shared/data/flores200/dev --model_dir=runs/quickstart",
        needs=(QS,)),
    Cmd("plot", "lowres plot DIR", fill=(("DIR", SHARED_RUN),), needs=(QS,)),
    Cmd("export_hf", "lowres export hf --model_dir=runs/quickstart --output=runs/quickstart-hf",
        needs=(QS, "quickstart_eval")),
    Cmd("lm_eval_task", ".venv/bin/python experiments/lm_eval/make_task.py --output=lm_eval_tasks --langs=pan,yor,cym",
        shell=True),
    Cmd("lm_eval", ".venv/bin/lm_eval --model hf --model_args pretrained=runs/quickstart-hf --include_path lm_eval_tasks "
        "--tasks lowres_continuation --device cpu", shell=True, needs=("export_hf", "lm_eval_task")),
    Cmd("sweep_dry_run", "lowres sweep experiments/sweeps/lr_grid.yaml --output=runs/lr_grid --dry_run"),
    # One of the example sweep's four runs (40 smoke-size steps): the same launcher trains the others.
    Cmd("sweep", "lowres sweep experiments/sweeps/lr_grid.yaml --output=runs/lr_grid --parallel=2",
        ("--only=lr0.003-s0",), needs=("sweep_dry_run",)),
    Cmd("sweep_status", "lowres sweep status runs/lr_grid", needs=("sweep",)),
    Cmd("data_split", "lowres data split flores:../shared/data/flores200/dev --langs=eng_Latn,yor_Latn "
        "--output=runs/split --max_train_bytes=yor_Latn=15000"),
    Cmd("models_list", "lowres models list"),
    Cmd("help", "lowres --help"),
)

INSTALL = "installs the package; CI (.ci/run) does it and this test runs in the result"
SUMMARY = "syntax summary with placeholders; its concrete README examples run"
NAME = "names a command or option in prose; no invocation"
SKIP = {
    # Quick start: the venv and the install around the commands that run, and the test suite itself.
    "python3 -m venv .venv": "creates the virtual environment; CI (.ci/run) does it",
    ".venv/bin/pip install -e .": INSTALL,
    '.venv/bin/pip install -e ".[test]"': INSTALL,
    ".venv/bin/python -m pytest -q -n 2": "the test suite itself, which holds this test; .ci/run runs it",
    ".ci/run": "CI's own entry point: a fresh venv, the install and the whole suite (about 15 minutes)",
    "pip install": INSTALL,
    "pip install -e .": INSTALL,
    'pip install -e ".[test]"': INSTALL,
    'pip install -e . "jax[tpu]"': "installs JAX for TPU; needs a TPU VM",
    'pip install -e . "jax[cuda12]"': "installs JAX for CUDA; needs GPU hosts",
    # "## The command line": placeholders (FILE, DIR, NAME, SOURCE, TEXT, a|b alternatives, `...`).
    "lowres train --gin_file=FILE [--gin_file=...] [--gin.NAME=VALUE ...] --model_dir=DIR [--distributed ...]": SUMMARY,
    "lowres eval --model_dir=DIR [--model_dir=DIR2] --data=SOURCE --output=FILE.json "
    "[--translate=eng_Latn-pan_Guru]": SUMMARY,
    "lowres translate --model_dir=DIR --src=eng_Latn --tgt=pan_Guru --input=FILE --output=FILE [--beam=5]": SUMMARY,
    "lowres generate --model_dir=DIR --prompt=TEXT --mode=S2S [--method=greedy|beam|sample|contrastive]": SUMMARY,
    "lowres data describe SOURCE_OR_MIXTURE [--tokens=N] [--model_dir=DIR] [--gin_file=FILE]": SUMMARY,
    "lowres data sample NAME [-n 3] [--model_dir=DIR]": SUMMARY,
    "lowres vocab report --model_dir=DIR | --vocab=FILE [--data=SOURCE] [--output=report.json]": SUMMARY,
    "lowres translationese build|score|filter ...": SUMMARY,
    "lowres plot MODEL_DIR": SUMMARY,
    "lowres sweep SPEC.yaml --output=OUT [--parallel=N] [--only=GLOB] [--launcher=local|slurm|commands] [--dry_run]":
        SUMMARY,
    "lowres sweep status|results OUT": SUMMARY,
    "lowres fit schedule --fit DIR [--fit DIR2] --predict DIR --output=OUT": SUMMARY,
    "lowres fit power --table=results.csv --y=COLUMN --x=COLUMN [--law=power|joint|nmt] --output=OUT": SUMMARY,
    "lowres data split SOURCE --langs=A,B --output=DIR [--heldout_fraction=0.2]": SUMMARY,
    "lowres export hf --model_dir=DIR --output=OUT [--step=N]": SUMMARY,
    "lowres train --gin_file=continue_from_hf.gin --gin.InitConfig.hf_checkpoint=\"'mt5-small'\" "
    "--model_dir=runs/mt5-yor": "needs a released checkpoint downloaded beforehand (mt5-small: 1.2 GB); "
                                "tests/test_hf_interop.py runs continue_from_hf.gin on a T5 it builds",
    "lowres bench train|data|checkpoint|scale|decode|all [--shape=NAME] [--json]": SUMMARY,
    "lowres bench CASE [--shape NAME] [--steps N] [--synthetic] [--json] [--output FILE.json]": SUMMARY,
    # Clusters.
    "lowres train --gin_file=runs/tpu_v4_8_pretrain.gin --model_dir=/mnt/runs/ul2-base":
        "for a TPU v4-8 VM: T5.1.1-base, ul2 (140 tasks: minutes of start-up on CPU), batch 128 x (512 + 512)",
    'gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all --command "cd lowres && lowres train --distributed '
    '--gin_file=runs/tpu_v4_8_pretrain.gin --model_dir=/mnt/runs/ul2-base"': "launches on every worker of a TPU pod",
    "lowres train --distributed --coordinator_address=HOST0:1234 --num_processes=2 --process_id=0 "
    "--gin_file=runs/multihost_gpu.gin --model_dir=/shared/runs/gpt":
        "multi-host GPU launch (needs the other host); tests/test_multihost.py runs 2 CPU processes",
    # Too slow at any size the CLI offers.
    "lowres bench all --json --output bench.json":
        "7 cases each in its own process (2-7 min on 2 cores); --steps 1 still leaves the data case's 250 warm-up "
        "batches, the scale search and ~7 process start-ups, and --time_limit_s only turns cases into error rows; "
        "tests/test_bench.py runs `all` on a stub plan",
    "python3.12 -m venv maxtext-venv": "MaxText's own environment for the side-by-side benchmark (Python 3.12 and a "
                                       "multi-GB install), not part of CI",
    'maxtext-venv/bin/pip install "maxtext[tpu]==0.2.5"': "as above: MaxText itself, for `lowres bench compare` only",
    "lowres bench compare --peer=maxtext --peer_python maxtext-venv/bin/python --rounds 3 --output compare.json":
        "needs the MaxText venv above and about 6 minutes; tests/test_bench.py checks its log parsing, ratios and "
        "its one-line errors without MaxText",
    "lowres bench compare --peer=maxtext": "the same command, named in the case list",
    "benchmarks/gpu.sh benchmarks/results/accelerator":
        "the accelerator benchmark (1B-parameter shapes at sequence 2048); tests/test_bench.py runs the script at "
        "the tiny shape on CPU",
    "pip install grain": "installs an optional package for benchmarks/grain_alternative.py, a comparison outside "
                         "lowres (its numbers are in the README)",
    "lowres bench data": "about 14 minutes: both executors' steady rates after 250 warm-up batches, FLORES-200 "
                         "start-ups in fresh processes, 1,000 synthetic languages; tests/test_bench.py and "
                         "tests/test_bench_data.py run its parts at tiny sizes",
    "python experiments/translationese/run.py --output runs/translationese":
        "the 23-minute recipe: ~15 lowres processes even at tiny sizes, and UDHR + Tatoeba from ../shared/data; "
        "tests/test_translationese_recipe.py checks its stages",
    "python experiments/continual/run.py --output runs/continual":
        "15 lowres train runs (24 min on the shared 2-core machine); tests/test_continual_recipe.py checks its "
        "logic and tests/test_sweeps.py the sweep it runs",
    "python experiments/ul2_vs_causal/run.py --output runs/ul2_vs_causal":
        "6 lowres train runs with held-out infilling evaluation; tests/test_infilling.py checks the evaluation and "
        "tests/test_sweeps.py the sweep it runs",
    "python experiments/order_matters/run.py --output runs/order_matters/sweep":
        "6 lowres train runs of 300 steps; tests/test_sweeps.py checks the sweep it runs",
    "python experiments/lr_annealing/run.py --output runs/lr_annealing/sweep":
        "9 lowres train runs of 400 steps and three fits; tests/test_sweeps.py and tests/test_scaling_fits.py check "
        "the sweep and the fit it runs",
    # Not lowres.
    "tensorboard --logdir DIR/tensorboard": "TensorBoard (not a lowres dependency) on a placeholder DIR",
    "tfds build": "TensorFlow Datasets' builder: downloads corpora",
    # Prose that names a command.
    "lowres": NAME,
    "lowres train": NAME,
    "lowres eval": NAME,
    "lowres translate": NAME,
    "lowres bench": NAME,
    "lowres eval --translate": NAME,
    "lowres export hf": NAME,
    "lowres sweep": NAME,
    "lowres fit": NAME,
    "lowres data split": NAME,
    'lowres fit power --table=results.csv --y="final eval/loss" --x=params --output=OUT':
        "needs a sweep over model sizes; tests/test_scaling_fits.py runs `fit power` in-process on a table it writes",
    "lowres sweep ... --index=I": "the shape of a line of OUT/commands.txt; tests/test_sweeps.py runs the same `--index` command as a SLURM array task",
    "lowres sweep results OUT": "placeholder OUT; tests/test_sweeps.py rebuilds a sweep's results",
    "lowres train --distributed": NAME,
    "python benchmarks/fault_soak.py --kills 20": "the fault soak: 20 killed and restarted runs, about 40 minutes on 2 "
                                                  "cores; tests/test_checkpoint_faults.py runs it with one kill",
    "lowres eval --data=builtin": "refers to the Quick start's eval (it lacks the required --model_dir/--output), "
                                  "which runs",
}


def test_every_readme_command_is_run_or_skipped():
    shown = readme_commands()
    run = [cmd.readme for cmd in RUN]
    assert len(set(run)) == len(run) and len({cmd.id for cmd in RUN}) == len(RUN)
    assert not set(run) & set(SKIP), "a command is both run and skipped"
    unlisted = [c for c in shown if c not in set(run) | set(SKIP)]
    assert not unlisted, ("README.md shows commands this test neither runs nor skips; add each to RUN (with tiny "
                          "sizes) or to SKIP (with the reason):\n" + "\n".join(unlisted))
    stale = [c for c in [*run, *SKIP] if c not in shown]
    assert not stale, "RUN/SKIP entries README.md no longer shows:\n" + "\n".join(stale)
    ids = {cmd.id for cmd in RUN}
    assert set(CHECKS) == ids, f"without checks: {ids - set(CHECKS)}; checks of no command: {set(CHECKS) - ids}"
    for cmd in RUN:
        assert set(cmd.needs) <= ids, cmd.id
        assert all(token in shlex.split(cmd.readme) for token, _ in cmd.fill), cmd.id


def test_readme_extraction_joins_continuations_splits_chains_and_drops_comments():
    text = ("intro `lowres plot DIR` and `lowres`, `not a command`\n\n"
            "   ```bash\n   a && lowres x --y=1 \\\n       --z='#1'   # comment\n   # only a comment\n   ```\n"
            "```python\nlowres not_shell\n```\n")
    assert readme_commands(text) == ["a", "lowres x --y=1 --z='#1'", "lowres plot DIR", "lowres"]


# ---------------------------------------------------------------- the clone the commands run in

FLORES_WORDS = {
    "eng": ["people", "river", "city", "school", "market", "rain", "music", "family", "road", "garden"],
    "pan": ["ਲੋਕ", "ਦਰਿਆ", "ਸ਼ਹਿਰ", "ਸਕੂਲ", "ਬਾਜ਼ਾਰ", "ਮੀਂਹ", "ਸੰਗੀਤ", "ਪਰਿਵਾਰ", "ਸੜਕ", "ਬਾਗ਼"],
    "amh": ["ሰዎች", "ወንዝ", "ከተማ", "ትምህርት", "ገበያ", "ዝናብ", "ሙዚቃ", "ቤተሰብ", "መንገድ", "አትክልት"],
    "khm": ["មនុស្ស", "ទន្លេ", "ទីក្រុង", "សាលា", "ផ្សារ", "ភ្លៀង", "តន្ត្រី", "គ្រួសារ", "ផ្លូវ", "សួន"],
    "yor": ["ènìyàn", "odò", "ìlú", "ilé-ìwé", "ọjà", "òjò", "orin", "ẹbí", "ọ̀nà", "ọgbà"],
}
FLORES_LINES = 60


def make_flores(root: Path) -> None:
    """A FLORES-200-like `root/dev/<code>.dev` (aligned lines) and `root/metadata_dev.tsv` (4 lines a document)."""
    (root / "dev").mkdir(parents=True)
    for lang in FAKE_FLORES_LANGS:
        words = FLORES_WORDS[lang]
        lines = [" ".join(words[(i * k + k) % len(words)] for k in (1, 3, 7)) + f" {i}." for i in range(FLORES_LINES)]
        (root / "dev" / f"{lang}.dev").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = "".join(f"https://example.org/{i // 4}\twikinews\n" for i in range(FLORES_LINES))
    (root / "metadata_dev.tsv").write_text("URL\tdomain\n" + rows, encoding="utf-8")


ENG_TXT = ["All human beings are born free and equal in dignity and rights.", "Everyone has the right to life.",
           "No one shall be held in slavery or servitude.", "Everyone has the right to an education."]
EN_DOCS = {"a.txt": "All human beings are born free. They have reason.\n\nEveryone has the right to life.\n",
           "b.txt": "No one shall be held in slavery.\n\nEveryone has the right to rest and leisure.\n"}


def make_clone(root: Path, real_flores: bool) -> Path:
    """root/lowres: the directory the commands run in, as a clone would be (gin_configs/ linked), with the
    inputs the README assumes (eng.txt, en/*.txt) and root/shared/data beside it."""
    clone = root / "lowres"
    (clone / "runs").mkdir(parents=True)
    (clone / "gin_configs").symlink_to(ROOT / "gin_configs", target_is_directory=True)
    (clone / "experiments").symlink_to(ROOT / "experiments", target_is_directory=True)
    # `.venv/bin/...` commands run with the interpreter running the tests (CI's .venv, or any other).
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    for alias in RUN_ALIASES:
        (clone / "runs" / alias).symlink_to("quickstart", target_is_directory=True)
    (clone / "eng.txt").write_text("\n".join(ENG_TXT) + "\n", encoding="utf-8")
    (clone / "en").mkdir()
    for name, text in EN_DOCS.items():
        (clone / "en" / name).write_text(text, encoding="utf-8")
    (root / "shared").mkdir()
    if real_flores:
        (root / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    else:
        make_flores(root / "shared" / "data" / "flores200")
    return clone


# ---------------------------------------------------------------- running them


@dataclasses.dataclass
class Done:
    cmd: Cmd
    clone: Path
    returncode: int | None = None  # None: not run
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    not_run: str = ""

    def path(self, relative: str) -> Path:
        return self.clone / relative


def _run_one(cmd: Cmd, clone: Path, env: dict[str, str]) -> Done:
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd.argv(), check=False, cwd=clone, env=env, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as expired:
        code, stdout, stderr = -9, str(expired.stdout or ""), f"timed out after {TIMEOUT_S} s"
    return Done(cmd, clone, code, stdout, stderr, time.perf_counter() - start)


def run_all(commands: tuple[Cmd, ...], clone: Path, env: dict[str, str], jobs: int = JOBS) -> dict[str, Done]:
    """Runs `commands`, at most `jobs` at a time, each once all it `needs` succeeded (in table order)."""
    done: dict[str, Done] = {}
    pending = list(commands)
    with ThreadPoolExecutor(jobs) as pool:
        running = {}
        while pending or running:
            for cmd in list(pending):
                failed = [n for n in cmd.needs if n in done and done[n].returncode != 0]
                if failed:
                    done[cmd.id] = Done(cmd, clone, not_run=f"not run: it needs {', '.join(failed)}, which failed")
                    pending.remove(cmd)
                elif len(running) < jobs and all(n in done for n in cmd.needs):
                    PREPARE.get(cmd.id, lambda clone: None)(clone)
                    running[pool.submit(_run_one, cmd, clone, env)] = cmd
                    pending.remove(cmd)
            if not running:
                assert not pending, f"commands waiting on commands that never run: {[c.id for c in pending]}"
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future).id] = future.result()
    return done


@pytest.mark.slow
def test_readme_commands_work_as_written(tmp_path, cache_dir, corpus):
    """`corpus` builds the built-in corpus cache once, before commands share it (LOWRES_CACHE_DIR)."""
    real_flores = SHARED_FLORES.is_dir()
    clone = make_clone(tmp_path, real_flores)
    env = dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    results = run_all(RUN, clone, env)
    failures, timings = [], []
    for cmd in RUN:
        result = results[cmd.id]
        timings.append(f"{result.seconds:6.1f} s  {cmd.id}")
        if result.not_run:
            failures.append(f"{cmd.readme}\n  {result.not_run}")
            continue
        try:
            if result.returncode != 0:
                raise AssertionError(f"exit code {result.returncode}: {_error(result)}")
            CHECKS[cmd.id](result, real_flores)
        except AssertionError as error:
            failures.append(f"{cmd.readme}\n  ran as: {shlex.join(cmd.argv()[1:])}\n  {error}")
    print(f"README commands: {time.perf_counter() - start:.0f} s wall ({len(RUN)} commands, {JOBS} at a time)\n"
          + "\n".join(timings))
    assert not failures, (f"{len(failures)} of {len(RUN)} README commands do not work as written:\n\n"
                          + "\n\n".join(failures))


def _error(result: Done) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("lowres:")]
    return (errors or lines or ["(no stderr)"])[-1][:1000]


# ---------------------------------------------------------------- before and after each command


def _remove_plots(clone: Path) -> None:
    for png in (clone / SHARED_RUN / "plots").glob("*.png"):
        png.unlink()


PREPARE: dict[str, Callable[[Path], None]] = {"plot": _remove_plots}  # so `plot` must redraw them
CHECKS: dict[str, Callable[[Done, bool], None]] = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn

    return register


def _lines(path: Path) -> list[str]:
    assert path.is_file(), f"{path.name} was not written"
    return path.read_text(encoding="utf-8").splitlines()


def _json(path: Path):
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text(encoding="utf-8"))


def _trained(run: Path, steps: int = 2) -> list[dict]:
    """metrics.jsonl's records (training ones have a loss; held-out evaluations log their own records)."""
    records = [json.loads(line) for line in _lines(run / "metrics.jsonl")]
    logged = [r["step"] for r in records if "loss" in r]
    assert logged == list(range(1, steps + 1)), f"metrics.jsonl training steps {logged}, expected 1..{steps}"
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in records if "loss" in r), records
    assert (run / "checkpoints" / str(steps)).is_dir(), f"no checkpoint {steps} in {run}"
    for name in ("config.gin", "lowres.json", "plots/loss.png"):
        assert (run / name).is_file(), f"{run.name}/{name} was not written"
    return records


def _bits_per_byte(report: dict, languages: set[str]) -> None:
    assert set(report["languages"]) == languages, sorted(report["languages"])
    for lang, row in report["languages"].items():
        assert 0 < row["bits_per_byte"] < 30 and row["bytes"] > 0 and row["tokens"] > 0, (lang, row)


def _translation(report: dict, directions: set[str], sentences: int) -> None:
    assert set(report["translation"]) == directions, report.get("translation")
    for direction, row in report["translation"].items():
        assert row["sentences"] == sentences and row["chrf++"] >= 0 and row["bleu"] >= 0, (direction, row)


def _with_md_png(path: Path) -> None:
    for suffix in (".md", ".png"):
        assert path.with_suffix(suffix).is_file(), f"{path.with_suffix(suffix).name} was not written"


def _jsonl(directory: Path, pattern: str) -> list[dict]:
    files = sorted(directory.glob(pattern))
    assert files, f"no {pattern} in {directory}"
    return [json.loads(line) for path in files for line in _lines(path)]


BUILTIN_LANGUAGES = {"amh_Ethi", "cym_Latn", "eng_Latn", "eus_Latn", "gle_Latn", "hin_Deva", "ibo_Latn", "isl_Latn",
                     "kat_Geor", "mlt_Latn", "nep_Deva", "pan_Guru", "sin_Sinh", "som_Latn", "swa_Latn", "tam_Taml",
                     "tir_Ethi", "xho_Latn", "yor_Latn", "zul_Latn"}
FLORES_DIRECTIONS = {"eng_Latn-pan_Guru", "pan_Guru-eng_Latn"}


@check(QS)
def _(done, real_flores):
    _trained(done.path(SHARED_RUN))
    assert (done.path(SHARED_RUN) / "vocab" / "spm.model").is_file()


@check("export_hf")
def _(done, real_flores):
    export = done.path("runs/quickstart-hf")
    config = _json(export / "config.json")
    assert config["architectures"] == ["T5ForConditionalGeneration"] and config["d_model"] == 32, config
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (export / name).is_file(), f"{name} was not written"
    card = (export / "README.md").read_text(encoding="utf-8")
    assert "| pan_Guru |" in card, "the model card lacks the run's eval table (runs/quickstart/eval.md)"


@check("lm_eval_task")
def _(done, real_flores):
    items = [json.loads(line) for line in _lines(done.path("lm_eval_tasks/lowres_continuation.jsonl"))]
    assert {item["lang"] for item in items} == {"pan_Guru", "yor_Latn", "cym_Latn"}
    assert all(len(item["choices"]) == 4 and 0 <= item["label"] < 4 for item in items)


@check("lm_eval")
def _(done, real_flores):
    row = re.search(r"\|lowres_continuation\|.*\|acc\s*\|.\s*\|\s*([\d.]+)\|", done.stdout)
    assert row and 0 <= float(row.group(1)) <= 1, done.stdout[-2000:]


@check("quickstart_eval")
def _(done, real_flores):
    report = _json(done.path("runs/quickstart/eval.json"))
    assert report["step"] == 2
    _bits_per_byte(report, BUILTIN_LANGUAGES)  # every built-in language, as README's Results table
    _with_md_png(done.path("runs/quickstart/eval.json"))


@check("head_eng50")
def _(done, real_flores):
    eng = _lines(done.path("../shared/data/flores200/dev/eng.dev"))
    assert _lines(done.path("eng50.txt")) == eng[:50]


@check("translate_eng50")
def _(done, real_flores):
    assert len(_lines(done.path("pan50.txt"))) == len(_lines(done.path("eng50.txt"))) == 50


@check("eval_flores_translate")
def _(done, real_flores):
    report = _json(done.path("runs/quickstart/flores.json"))
    _bits_per_byte(report, {"eng_Latn", "pan_Guru"})
    _translation(report, FLORES_DIRECTIONS, sentences=2)
    _with_md_png(done.path("runs/quickstart/flores.json"))


@check("data_describe_flores")
def _(done, real_flores):
    languages = 204 if real_flores else len(FAKE_FLORES_LANGS)  # README: "it lists 204 languages"
    total = re.search(r"^total \((\d+) languages\)\s+[\d,]+\s+[\d,]+\s+([\d,]+)\s", done.stdout, re.MULTILINE)
    assert total, f"no total line with a token count (--model_dir) in:\n{done.stdout[-2000:]}"
    assert int(total.group(1)) == languages and int(total.group(2).replace(",", "")) > 0, total.group(0)
    assert f"monolingual tasks: {languages}, one per language (flores200.<lang>.r_and_s; each example picks one of 2" in done.stdout
    assert "flores200.eng_Latn_to_pan_Guru.translate" in done.stdout


@check("flores_train")
def _(done, real_flores):
    _trained(done.path("runs/flores"))


@check("vocab_report")
def _(done, real_flores):
    report = _json(done.path("report.json"))
    assert set(report["languages"]) == {"pan_Guru", "amh_Ethi", "eng_Latn", "khm_Khmr", "yor_Latn"}
    for lang, row in report["languages"].items():
        assert row["tokens_per_word"] > 0 and row["unk_rate"] == 0, (lang, row)
    assert done.path("report.png").is_file(), "report.png was not written"


def _samples(stdout: str) -> dict[str, str]:
    """`data sample` output: section name -> its text."""
    sections = stdout.split("== ")[1:]
    return {section.splitlines()[0].strip(" ="): section for section in sections}


@check("sweep_dry_run")
def _(done, real_flores):
    assert "4 of 4 runs; nothing trained" in done.stdout and "[3] lr0.003-s1" in done.stdout, done.stdout


@check("sweep")
def _(done, real_flores):
    out = done.clone / "runs" / "lr_grid"
    rows = {row["run"]: row for row in csv.DictReader((out / "results.csv").open())}
    assert rows["lr0.003-s0"]["state"] == "done" and rows["lr0.003-s0"]["steps"] == "40", rows
    assert rows["lr0.001-s0"]["state"] == "pending"
    assert float(rows["lr0.003-s0"]["final eval/bits_per_byte"]) > 0
    assert (out / "plots" / "curves_loss.png").is_file()


@check("sweep_status")
def _(done, real_flores):
    assert "1 done, 3 pending" in done.stdout, done.stdout


@check("data_split")
def _(done, real_flores):
    record = _json(done.clone / "runs" / "split" / "split.json")
    assert set(record["languages"]) == {"eng_Latn", "yor_Latn"}
    assert record["languages"]["yor_Latn"]["train"]["bytes"] <= 15000
    assert record["languages"]["eng_Latn"]["validation"]["documents"] > 0


@check("data_sample_ul2")
def _(done, real_flores):
    sections = _samples(done.stdout)
    assert len(sections) == 7, f"{len(sections)} denoisers, expected the 7 of ul2: {list(sections)}"
    for name, section in sections.items():
        assert "[3] mode:" in section and "[4] mode:" not in section, f"{name} does not show 3 examples"
        assert section.count("targets:") == 3, name


@check("data_sample_task")
def _(done, real_flores):
    sections = _samples(done.stdout)
    assert list(sections) and all(name.startswith("builtin.yor_Latn.span_3_0p15_nlu") for name in sections), \
        list(sections)
    (section,) = sections.values()
    assert section.count("mode:    [NLU]") == 3 and "<extra_id_0>" in section, section[:2000]


@check("qs_eval_train")
def _(done, real_flores):
    records = _trained(done.path("runs/qs_eval"))
    evaluations = [r for r in records if "eval/loss" in r]
    assert [r["step"] for r in evaluations] == [2], f"held-out evaluations at steps {[r['step'] for r in evaluations]}"
    last = evaluations[-1]
    assert all(f"eval/{lang}/bits_per_byte" in last for lang in ("eng_Latn", "pan_Guru", "yor_Latn")), sorted(last)
    assert any(key.endswith("/chrf++") for key in last), sorted(last)  # the translation tasks decode
    assert done.path("runs/qs_eval/plots/heldout_by_language.png").is_file()


@check("continued_train")
def _(done, real_flores):
    _trained(done.path("runs/continued"))
    assert re.search(r"initiali[sz]ed \d+ parameters from runs/quickstart", done.stdout), done.stdout[-2000:]


@check("translate_beam")
def _(done, real_flores):
    assert len(_lines(done.path("pan.txt"))) == len(ENG_TXT)


@check("generate")
def _(done, real_flores):
    assert any(line.startswith("All human beings\t") for line in done.stdout.splitlines()), done.stdout[-2000:]


@check("eval_ab")
def _(done, real_flores):
    report = _json(done.path("eval/ab.json"))
    assert [m["model_dir"] for m in report["models"]] == ["runs/a", "runs/b"]
    for model in report["models"]:
        _bits_per_byte(model, {"eng_Latn", "pan_Guru"})
        _translation(model, FLORES_DIRECTIONS, sentences=2)
    _with_md_png(done.path("eval/ab.json"))


@check("translationese_build")
def _(done, real_flores):
    docs = _jsonl(done.path("synth/pan"), "docs-*.jsonl")
    paragraphs = sum(len(text.strip().split("\n\n")) for text in EN_DOCS.values())
    assert len(docs) == paragraphs, f"{len(docs)} documents for {paragraphs} paragraphs"
    for doc in docs:
        assert doc["lang"] == "pan_Guru" and doc["source_lang"] == "eng_Latn" and doc["translator"].startswith(
            "lowres:") and doc["source_id"], doc
    assert _json(done.path("synth/pan/manifest.json"))


@check("tinylm_train")
def _(done, real_flores):
    _trained(done.path("runs/tinylm_pan"))
    info = _json(done.path("runs/tinylm_pan/lowres.json"))
    assert info["model"]["architecture"] == "decoder_only", info["model"]


@check("translationese_score")
def _(done, real_flores):
    docs = _jsonl(done.path("synth/pan"), "docs-*.jsonl")
    scores = _jsonl(done.path("synth/pan"), "scores-*.jsonl")
    assert [s["id"] for s in scores] == [d["id"] for d in docs]
    assert all(s["perplexity"] > 1 for s in scores), scores


@check("translationese_filter")
def _(done, real_flores):
    summary = _json(done.path("synth/pan_kept/filter.json"))
    kept = _jsonl(done.path("synth/pan_kept"), "docs-*.jsonl")
    assert summary["documents"] == 4 and summary["kept"] == len(kept) == 3, summary  # 70% of 4
    assert all("perplexity" in doc and "score" in doc for doc in kept), kept
    assert done.path("synth/pan_kept/perplexity_histogram.png").is_file()


@check("bench_checkpoint")
def _(done, real_flores):
    assert re.search(r"^\| tiny \| [\d.]+ \|", done.stdout, re.MULTILINE), done.stdout[-2000:]


@check("data_describe_builtin")
def _(done, real_flores):
    assert re.search(r"^total\s+20 languages\s", done.stdout, re.MULTILINE), done.stdout[-2000:]
    assert all(lang in done.stdout for lang in BUILTIN_LANGUAGES)


@check("data_cache")
def _(done, real_flores):
    languages = 204 if real_flores else len(FAKE_FLORES_LANGS)
    last = done.stdout.strip().splitlines()[-1]
    found = re.match(r"(\S+): (\d+) entries tokenized .*?, (\d+) reused", last)
    assert found, done.stdout[-2000:]
    # every language's text, once as the training split (FLORES dev) and once as validation
    assert int(found.group(2)) + int(found.group(3)) == 2 * languages, last
    assert (Path(found.group(1)) / "manifest.json").is_file()


@check("bench_data_steady")
def _(done, real_flores):
    assert re.search(r"^\| r_and_s \| encoder_decoder \| indexed \| [\d.e+]+ \|", done.stdout, re.MULTILINE), \
        done.stdout[-2000:]


@check("plot")
def _(done, real_flores):
    for name in ("loss.png", "learning_rate.png"):
        assert done.path(f"{SHARED_RUN}/plots/{name}").is_file(), f"plots/{name} was not redrawn"


@check("models_list")
def _(done, real_flores):
    for row in ("| tiny | encoder_decoder |", "| mini | encoder_decoder |", "| tiny | decoder_only |",
                "| gpt2-medium | decoder_only |"):
        assert row in done.stdout, row


@check("help")
def _(done, real_flores):
    assert done.stdout.startswith("usage: lowres")
    for command in ("train", "eval", "translate", "generate", "translationese", "plot", "models", "data", "vocab",
                    "bench"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), command
