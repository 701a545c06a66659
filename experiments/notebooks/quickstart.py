# ---
# jupyter:
#   accelerator: TPU
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # lowres quick start: train, evaluate, translate, export
#
# Trains a small UL2 encoder-decoder on lowres's built-in multilingual corpus (or on your own text),
# shows the loss while it trains, evaluates bits per byte per language, translates a few words and
# exports the model to Hugging Face format.
#
# **What it needs.** Any Colab runtime. The notebook picks its configuration from the accelerator JAX
# sees:
#
# | runtime | configuration | RAM | time |
# |---|---|---|---|
# | CPU (no accelerator) | `quickstart.gin`: a 3.4M-parameter encoder-decoder, 200 steps, batch 8 | about 4 GB | about 5½ minutes of training on 2 cores (the README's quick start, measured there), plus the install (105–206 s in this project's CI; not timed on Colab) and evaluation |
# | TPU (v5e-1, v6e-1, v2-8) or GPU | the same recipe at the `small` preset (about 52M parameters with its 8,000-piece vocabulary), bfloat16 compute, batch 32 per chip, 1,000 steps, the mesh over every chip | about 8 GB host | untested: no TPU or GPU was available when this notebook was written |
#
# Without an accelerator the notebook says so and uses the CPU configuration; nothing fails. To get a
# TPU in Colab: *Runtime → Change runtime type → TPU*. Run the cells top to bottom.

# %% [markdown]
# ## Install
# In Colab this clones the repository and installs it (one `pip install`; 105–206 s in this project's CI, not timed on Colab). In a
# checkout where lowres is already installed it does nothing.

# %%
import importlib.util
import os
import subprocess
import sys

LOWRES_REPOSITORY = "https://github.com/lowres-nlp/lowres"  # in a fork: your own

if importlib.util.find_spec("lowres") is None:
    if not os.path.exists("lowres/pyproject.toml"):
        subprocess.run(["git", "clone", "--depth=1", LOWRES_REPOSITORY, "lowres"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "./lowres[hf]"], check=True)
    sys.path.insert(0, os.path.abspath("lowres"))  # an editable install is otherwise seen after a restart
import lowres

print("lowres", lowres.__version__, "from", os.path.dirname(lowres.__file__))

# %% tags=["parameters"]
# Settings. The tests run this notebook on a CPU with PROFILE = "accelerator" (so it falls back to the CPU
# configuration) and NUM_STEPS = 6.
PROFILE = "auto"  # auto (from the accelerator) | cpu | accelerator
DATA = "builtin"  # or "text:/content/drive/MyDrive/corpus/{lang}.txt", "flores:/path/to/flores200/dev", ...
EVAL_DATA = None  # None: the held-out split of DATA (builtin: validation); or another source string
LANGUAGES = None  # None: every language of DATA; or e.g. ["eng", "pan", "yor", "cym"]
RUN_DIR = "runs/notebook_quickstart"
NUM_STEPS = None  # None: the profile's
EXPORT_DIR = None  # None: RUN_DIR + "_hf"
MOUNT_DRIVE = False  # True: mount Google Drive at /content/drive first (Colab only)

# %% [markdown]
# ## Your own text (optional)
# Upload files in the Files pane or mount Google Drive (`MOUNT_DRIVE = True`), then point `DATA` at
# them: `text:/content/drive/MyDrive/corpus/{lang}.txt` reads one file per language (plain, .gz, .bz2
# or .zst; one document per line or blank-line separated), `{split}` in the pattern selects
# train/validation files, and `flores:DIR` reads a FLORES-200 directory.

# %%
if MOUNT_DRIVE:
    try:
        from google.colab import drive
    except ImportError:
        print("MOUNT_DRIVE is set but this is not Colab: skipping the mount")
    else:
        drive.mount("/content/drive")

# %% [markdown]
# ## Pick a configuration for this machine

# %%
import json

import jax

backend = jax.default_backend()  # "tpu", "gpu" or "cpu"
devices = jax.devices()
print(f"JAX {jax.__version__}: {len(devices)} x {devices[0].device_kind} ({backend})")

profile = PROFILE
if profile == "auto":
    profile = "accelerator" if backend in ("tpu", "gpu") else "cpu"
if profile == "accelerator" and backend not in ("tpu", "gpu"):
    print("No TPU or GPU is visible to JAX, so this run uses the CPU configuration instead. "
          "In Colab: Runtime > Change runtime type > TPU, then run the notebook again.")
    profile = "cpu"

if profile == "cpu":
    gin_files = ["quickstart.gin"]
    bindings = []
elif profile == "accelerator":
    gin_files = ["quickstart.gin"]
    bindings = [
        'ModelConfig.preset = "small"',
        'ModelConfig.overrides = {"dtype": "bfloat16"}',  # bfloat16 compute, float32 parameters
        f"DataConfig.batch_size = {32 * len(devices)}",  # the data axis of the mesh spans every chip
        "DataConfig.inputs_length = 256",
        "DataConfig.targets_length = 256",
        "VocabularyConfig.vocab_size = 8000",
        "TrainConfig.num_steps = 1000",
        "TrainConfig.log_every = 50",
        "CheckpointConfig.save_interval_steps = 500",
    ]
else:
    raise ValueError(f"PROFILE={PROFILE!r}: use auto, cpu or accelerator")
bindings.append(f"DataConfig.source = {json.dumps(DATA)}")  # a gin binding's value is a Python literal
TRANSLATES = DATA == "builtin"  # the built-in corpus has English-aligned pairs; plain text has none
if not TRANSLATES:
    bindings.append("DataConfig.translation_rate = 0.0")
if LANGUAGES:
    bindings.append(f"DataConfig.languages = {json.dumps(list(LANGUAGES))}")
if NUM_STEPS:
    bindings.append(f"TrainConfig.num_steps = {int(NUM_STEPS)}")
print(f"profile {profile}: {gin_files} with", *bindings, sep="\n  ")

# %% [markdown]
# ## Train
# The loss plot below is redrawn at every logged step; the progress bar shows steps per second and the
# time left. Running the cell again resumes from the last checkpoint in `RUN_DIR` (a finished run has
# nothing left to do).

# %%
from lowres.gin_files import parse_gin
from lowres.jobs import train_job
from lowres.training.plots import LiveLossPlot
from lowres.training.trainer import TrainSettings

parse_gin(gin_files, bindings)  # lowres.jobs, imported above, registers what training binds
settings = TrainSettings.from_gin()
summary = train_job(RUN_DIR, settings, extra_hooks=[LiveLossPlot(every=settings.train.log_every)])
history = summary["history"]
if history:
    print(f"steps {summary['start_step']}..{summary['final_step']}: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")

# %% [markdown]
# ## Evaluate per language
# Bits per byte of held-out text (lower is better; independent of the tokenizer), against a unigram
# byte model as the baseline. On your own text, a pattern with `{split}` and validation files gives a
# held-out score (`lowres data split` makes such files from a corpus); without them the score is on the
# training text itself, and the report says it is in-sample.

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from lowres.evaluation import report

eval_reports = report.run_eval([Path(RUN_DIR)], EVAL_DATA or DATA, langs=LANGUAGES)
markdown, written = report.write_outputs(eval_reports, Path(RUN_DIR) / "eval.json")
display(Markdown(markdown))
display(Image(filename=str(Path(RUN_DIR) / "eval.png")))

# %% [markdown]
# ## Translate (or continue) a few words
# On the built-in corpus the quickstart mixes translation of language names (from CLDR) into its
# training, so the model can be asked for translations; on your own text (no pairs) it continues
# prompts in UL2's S2S mode instead, as `lowres generate` does. A few hundred CPU steps do not learn to
# translate: expect the format, not the meaning.

# %%
from lowres.checkpoints.trained_model import load_trained_model
from lowres.inference.decoding import DecodeConfig
from lowres.inference.generate import Generator, mode_inputs

model = load_trained_model(RUN_DIR)
words = ["French", "German", "Japanese", "Welsh"]
targets = [lang for lang in model.info.languages if not lang.startswith("eng")][:3]
if TRANSLATES:
    translate = report.translator(model, beam=1, batch_size=8, max_length=32)
    for target in targets:
        for word, output in zip(words, translate(words, target)):
            print(f"{word} -> {target}: {output}")
else:
    generator = Generator(model, DecodeConfig("greedy", 32), batch_size=8)
    prompts = ["The", "In the beginning", "Everyone has the right"]
    inputs = [mode_inputs(model.vocabulary, p, "[S2S]" if model.info.mode_tokens else None, model.info.inputs_length)
              for p in prompts]
    for prompt, ids in zip(prompts, generator.generate(inputs)):
        print(f"{prompt} ... {model.vocabulary.decode(ids)}")

# %% [markdown]
# ## Export to Hugging Face
# Writes a `transformers` model directory (config, safetensors weights, tokenizer, model card) and, when
# `transformers` and `torch` are installed (they are in Colab), loads it back and generates with it.
# Upload it with `huggingface_hub.upload_folder` once you are logged in.

# %%
from lowres.interop.hf_export import ExportOptions, export_hf

export_dir = Path(EXPORT_DIR or RUN_DIR + "_hf")
export_hf(model, export_dir, ExportOptions(eval_report=Path(RUN_DIR) / "eval.json"))
print("exported:", ", ".join(sorted(p.name for p in export_dir.iterdir())))

try:
    import torch
    import transformers
except ImportError:
    print("transformers/torch not installed: skipping the check in transformers")
else:
    hf_config = transformers.AutoConfig.from_pretrained(export_dir)
    auto = transformers.AutoModelForSeq2SeqLM if hf_config.is_encoder_decoder else transformers.AutoModelForCausalLM
    hf_model = auto.from_pretrained(export_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(export_dir)
    print(f"transformers loads it as {type(hf_model).__name__}: {hf_model.num_parameters():,} parameters")
    from lowres.inference.translate import translation_inputs

    # The same input ids lowres decodes from (translation: <2tgt> tag, the word, EOS).
    ids = (translation_inputs(model.vocabulary, "French", targets[0], model.info.inputs_length) if TRANSLATES
           else inputs[0])
    generated = hf_model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    print("HF generate:", tokenizer.decode(generated[0], skip_special_tokens=True))
