"""`lowres translate`: input layout, order, and resumption after a kill (no duplicated or dropped lines)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("eng_Latn", "pan_Guru")
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਪੈਦਾ ਹੁੰਦੇ ਹਨ।",
    "All human beings are born free and equal in dignity and rights.",
    "Everyone has the right to life, liberty and security of person.",
    "ਹਰ ਕਿਸੇ ਨੂੰ ਜੀਵਨ ਦਾ ਅਧਿਕਾਰ ਹੈ।",
]


def make_model_dir(path: Path, architecture: str = "encoder_decoder", seed: int = 0) -> Path:
    """A lowres model directory (lowres.json, vocabulary, Orbax checkpoint) holding a tiny random model."""
    from flax import nnx

    from lowres.data.vocab import vocabulary as vocab_lib
    from lowres.models.architecture import ModelConfig, build_model, config_to_dict
    from lowres.checkpoints.store import CheckpointConfig, CheckpointStore

    vocab_path = path / "vocab" / "spm.model"
    if not vocab_path.exists():
        config = vocab_lib.VocabularyConfig(vocab_size=400, num_sentinels=10)
        vocab_lib.train_sentencepiece(SENTENCES * 20, vocab_path, config, languages=LANGS)
    vocabulary = vocab_lib.load_vocabulary(vocab_path, 10)
    arch = ModelConfig(architecture=architecture, preset="tiny").resolve(vocabulary.vocab_size)
    info = {"model": config_to_dict(arch), "vocabulary": "vocab/spm.model", "num_sentinels": 10,
            "inputs_length": 32, "targets_length": 16, "objective": "translate", "languages": list(LANGS),
            "data_source": "test"}
    (path / "lowres.json").write_text(json.dumps(info))
    params = nnx.to_pure_dict(nnx.state(build_model(arch, seed), nnx.Param))
    store = CheckpointStore(path / "checkpoints", CheckpointConfig(async_save=False))
    store.save(1, params, {"count": np.zeros((), np.int32)}, {"step": 1}, force=True)
    store.close()
    return path


class FakeGenerator:
    """Echoes the input ids it gets (after the tag), batch by batch, and records the batches."""

    batch_size = 3

    def __init__(self):
        self.batches = []

    def generate(self, inputs):
        self.batches.append(inputs)
        return [list(x[1:-1]) for x in inputs]


class CharVocab:
    eos_id = 1

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)

    tokenizer = None


def test_resume_after_a_torn_write_neither_duplicates_nor_drops(tmp_path, monkeypatch):
    from lowres.inference import translate

    monkeypatch.setattr(translate.vocab_lib, "reserved_id", lambda vocabulary, token: 7)
    source = tmp_path / "in.txt"
    lines = [f"line {i}" for i in range(10)]
    lines[4] = ""  # blank lines stay blank and keep the alignment
    source.write_text("\n".join(lines) + "\n")
    reference = tmp_path / "reference.txt"
    translate.translate_file(FakeGenerator(), CharVocab(), source, reference, "pan_Guru", 32, progress=False)
    assert reference.read_text().splitlines() == lines
    partial = tmp_path / "partial.txt"
    partial.write_text("line 0\nline 1\nline 2\nline 3\n\nli")  # killed in the middle of line 5
    generator = FakeGenerator()
    stats = translate.translate_file(generator, CharVocab(), source, partial, "pan_Guru", 32, progress=False)
    assert partial.read_text() == reference.read_text()
    assert stats["resumed_at"] == 5 and generator.batches[0][0] == [7, *map(ord, "line 5"), 1]
    too_long = tmp_path / "long.txt"
    too_long.write_text("x\n" * 11)
    with pytest.raises(ValueError, match="choose another --output"):
        translate.translate_file(FakeGenerator(), CharVocab(), source, too_long, "pan_Guru", 32, progress=False)


def test_translation_inputs_are_tag_then_source_then_eos(tmp_path):
    from lowres.data.vocab import vocabulary as vocab_lib
    from lowres.inference.translate import translation_inputs

    model_dir = tmp_path / "m"
    config = vocab_lib.VocabularyConfig(vocab_size=400, num_sentinels=10)
    vocab_lib.train_sentencepiece(SENTENCES * 20, model_dir / "spm.model", config, languages=LANGS)
    vocabulary = vocab_lib.load_vocabulary(model_dir / "spm.model", 10)
    ids = translation_inputs(vocabulary, SENTENCES[0], "pan_Guru", 64)
    assert ids[0] == vocab_lib.reserved_id(vocabulary, "<2pan_Guru>") and ids[-1] == vocabulary.eos_id
    assert ids[1:-1] == list(vocabulary.encode(SENTENCES[0]))
    assert len(translation_inputs(vocabulary, SENTENCES[0] * 10, "pan_Guru", 12)) == 12
    with pytest.raises(ValueError, match="cannot translate"):
        translation_inputs(vocabulary, "x", "yor_Latn", 12)


@pytest.mark.slow
def test_translate_cli_resumes_after_sigkill(tmp_path):
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator
    from lowres.inference.translate import translate_file
    from lowres.checkpoints.trained_model import load_trained_model

    model_dir = make_model_dir(tmp_path / "model")
    source = tmp_path / "eng.txt"
    lines = [SENTENCES[i % len(SENTENCES)] + f" {i}" for i in range(400)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "pan.txt"
    command = [sys.executable, "-m", "lowres.cli", "translate", f"--model_dir={model_dir}", "--src=eng",
               "--tgt=pan_Guru", f"--input={source}", f"--output={output}", "--batch_size=2", "--max_length=8",
               "--no_progress"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if output.exists() and output.read_text(encoding="utf-8").count("\n") >= 6:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = output.read_text(encoding="utf-8").count("\n")
    assert 6 <= killed_at < len(lines)

    loaded = load_trained_model(model_dir)
    generator = Generator(loaded, DecodeConfig("greedy", max_length=8), batch_size=2)
    stats = translate_file(generator, loaded.vocabulary, source, output, "pan_Guru", 32, progress=False)
    assert stats["resumed_at"] >= killed_at
    reference = tmp_path / "reference.txt"
    translate_file(generator, loaded.vocabulary, source, reference, "pan_Guru", 32, progress=False)
    assert output.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
    assert len(reference.read_text(encoding="utf-8").splitlines()) == len(lines)


def test_cli_errors_name_the_option(tmp_path, capsys):
    from lowres import cli

    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    assert cli.main(["translate", f"--model_dir={tmp_path}", "--src=eng", "--tgt=pan", f"--input={source}",
                     f"--output={tmp_path / 'out.txt'}"]) == 2
    assert "--model_dir" in capsys.readouterr().err
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "lowres.json").write_text("{}")
    assert cli.main(["eval", f"--model_dir={model_dir}", "--data=builtin", "--translate=eng-pan",
                     f"--output={tmp_path / 'e.json'}"]) == 2
    assert "--translate needs --data=flores:DIR" in capsys.readouterr().err
    assert cli.main(["translate", f"--model_dir={model_dir}", "--src=eng", "--tgt=xx-not-a-language",
                     f"--input={source}", f"--output={tmp_path / 'out.txt'}"]) == 2
