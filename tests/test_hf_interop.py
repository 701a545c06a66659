"""Hugging Face interop: lowres runs exported and loaded by `transformers` (logits and greedy decoding
equal), tiny HF models imported (logits equal, weights bitwise equal after a round trip), the
tokenizer round trip on every script of the built-in corpus, and continued pretraining from an HF
checkpoint with an extended vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torch  # the test extra installs torch and transformers: these tests run (never skip) on CI
import transformers

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lowres.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)  # fmt: skip


def _env(cache_dir):
    return dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir))


# Two tiny runs trained through the CLI: an encoder-decoder exported every 3 steps, and a causal
# decoder-only model with a tied head (whose logit scale the export folds into the final norm).
RUNS = {
    "encoder_decoder": ["--gin.CheckpointConfig.hf_export_every=3"],
    "decoder_only": ['--gin.ModelConfig.architecture="decoder_only"', '--gin.DataConfig.decoder_attention="causal"',
                     '--gin.ModelConfig.overrides={"tie_embeddings": True}'],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    trained = {}
    for name, bindings in RUNS.items():
        model_dir = tmp_path_factory.mktemp(name) / "run"
        result = run_cli("train", "--gin_file=smoke.gin", f"--model_dir={model_dir}", "--no_progress",
                         "--gin.TrainConfig.num_steps=6", "--gin.CheckpointConfig.save_interval_steps=6", *bindings,
                         env=_env(cache_dir))  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        trained[name] = model_dir
    return trained


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory, cache_dir):
    out = {}
    for name, model_dir in runs.items():
        output = tmp_path_factory.mktemp("export") / name
        result = run_cli("export", "hf", f"--model_dir={model_dir}", f"--output={output}", env=_env(cache_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = output
    return out


def _text_batch(model, lines: int = 3) -> list[list[int]]:
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    corpus = build_builtin_corpus(progress=False)
    texts = [corpus.mono_path(lang, "validation").read_text(encoding="utf-8").splitlines()[0]
             for lang in ("pan_Guru", "yor_Latn", "cym_Latn")[:lines]]  # fmt: skip
    return [model.vocabulary.encode(text)[:20] + [1] for text in texts]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_exported_run_matches_lowres_logits_and_greedy_decoding(runs, exported, name):
    import jax.numpy as jnp

    from lowres.checkpoints.trained_model import load_trained_model
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator
    from lowres.models.losses import merge_model

    model = load_trained_model(runs[name])
    module = merge_model(model.graphdef, model.params, model.rest)
    prompts = _text_batch(model)
    width = max(map(len, prompts))
    ids = np.array([p + [0] * (width - len(p)) for p in prompts])
    loader = transformers.AutoModelForSeq2SeqLM if name == "encoder_decoder" else transformers.AutoModelForCausalLM
    hf = loader.from_pretrained(exported[name]).eval()
    with torch.no_grad():
        if name == "encoder_decoder":
            targets = np.roll(ids, 1, axis=1)
            targets[:, 0] = 0
            ours = np.asarray(module.decode(module.encode(jnp.asarray(ids)), jnp.asarray((ids != 0).astype(np.int32)),
                                            jnp.asarray(targets)))  # fmt: skip
            theirs = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(ids != 0),
                        decoder_input_ids=torch.tensor(targets)).logits.numpy()  # fmt: skip
        else:
            sequence = np.concatenate([np.zeros((len(ids), 1), ids.dtype), ids], axis=1)  # BOS = 0, as seqio
            ours = np.asarray(module(jnp.asarray(sequence)))
            theirs = hf(input_ids=torch.tensor(sequence)).logits.numpy()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < TOLERANCE

    steps = 8
    generator = Generator(model, DecodeConfig("greedy", steps), batch_size=len(prompts))
    ours = generator.generate(prompts)
    for prompt, our_tokens in zip(prompts, ours, strict=True):
        with torch.no_grad():
            if name == "encoder_decoder":
                out = hf.generate(torch.tensor([prompt]), do_sample=False, num_beams=1, max_new_tokens=steps)[0, 1:]
            else:
                start = [0, *prompt]
                out = hf.generate(torch.tensor([start]), do_sample=False, num_beams=1, max_new_tokens=steps)
                out = out[0, len(start):]
        their_tokens = [int(t) for t in out.tolist()]
        if 1 in their_tokens:
            their_tokens = their_tokens[: their_tokens.index(1)]
        assert our_tokens == their_tokens


@pytest.mark.slow
def test_export_directory_has_the_hf_files_and_a_model_card(runs, exported):
    directory = exported["encoder_decoder"]
    names = {p.name for p in directory.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "README.md", "lowres_export.json", "spiece.model"} <= names
    card = (directory / "README.md").read_text()
    assert "T5ForConditionalGeneration" in card and "| steps | 6 |" in card and "language:\n- cym" in card
    info = json.loads((runs["encoder_decoder"] / "lowres.json").read_text())
    assert f"`{info['objective']}`" in card
    generation = json.loads((directory / "generation_config.json").read_text())
    assert generation["decoder_start_token_id"] == 0 and generation["eos_token_id"] == 1


@pytest.mark.slow
def test_periodic_exports_beside_checkpoints(runs):
    exports = runs["encoder_decoder"] / "hf"
    assert sorted(p.name for p in exports.iterdir()) == ["step_6"]  # step_3 replaced: hf_export_keep = 1
    record = json.loads((exports / "step_6" / "lowres_export.json").read_text())
    assert record["step"] == 6 and record["approximations"] == []
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(exports / "step_6")
    assert model.config.d_model == 32


@pytest.mark.slow
def test_tokenizer_round_trip_on_every_script(runs, exported, corpus):
    from lowres.checkpoints.trained_model import load_run_vocabulary
    from lowres.data.vocab.vocabulary import MODE_TOKENS, language_tag, reserved_id, sentinel_id

    vocabulary = load_run_vocabulary(runs["encoder_decoder"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported["encoder_decoder"])
    scripts = {}
    for lang in corpus.languages:
        scripts.setdefault(lang.split("_")[1], lang)
    assert len(scripts) >= 5
    for lang in scripts.values():
        for line in corpus.mono_path(lang, "validation").read_text(encoding="utf-8").splitlines()[:20]:
            assert tokenizer(line, add_special_tokens=False)["input_ids"] == vocabulary.encode(line), (lang, line)
    assert tokenizer("hello")["input_ids"][-1] == 1  # the encoder-decoder tokenizer appends EOS, as T5's
    tags = [language_tag(lang) for lang in json.loads((runs["encoder_decoder"] / "lowres.json").read_text())["languages"]]
    for token in [*MODE_TOKENS, *tags]:
        assert tokenizer.convert_tokens_to_ids(token) == reserved_id(vocabulary, token)
        assert tokenizer(f"x {token} y", add_special_tokens=False)["input_ids"].count(reserved_id(vocabulary, token)) == 1
    for index in (0, 1, 99):
        assert tokenizer.convert_tokens_to_ids(f"<extra_id_{index}>") == sentinel_id(vocabulary, index)
    decoder = transformers.AutoTokenizer.from_pretrained(exported["decoder_only"])
    assert decoder("hello")["input_ids"][0] == 0  # decoder-only sequences start with id 0, as seqio's


def test_byte_vocabulary_exports_as_a_byte_tokenizer(tmp_path):
    from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
    from lowres.interop.hf_tokenizer import write_tokenizer

    vocabulary = ReservedByteVocabulary(["[NLU]", "<2yor_Latn>"], num_sentinels=5)
    write_tokenizer(vocabulary, tmp_path, decoder_only=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in ["Báwo ni", "ਪੰਜਾਬੀ", "日本 🙂", " a\tb\n"]:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == vocabulary.encode(text)
        assert tokenizer.decode(vocabulary.encode(text)) == text
    assert tokenizer.convert_tokens_to_ids("<2yor_Latn>") == vocabulary.reserved_ids["<2yor_Latn>"]
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == vocabulary.vocab_size - 1


# --------------------------------------------------------------------------------------------- import


def _hf_models():
    llama = dict(vocab_size=120, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 head_dim=8)  # fmt: skip
    t5 = dict(vocab_size=120, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
    return {
        "llama-gqa-untied": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
            **llama, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=False)),
        "llama-mqa-tied": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
            **llama, num_key_value_heads=1, tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh")),
        "mistral": (transformers.MistralForCausalLM, transformers.MistralConfig(
            **llama, num_key_value_heads=2, sliding_window=None)),
        "t5": (transformers.T5ForConditionalGeneration, transformers.T5Config(
            **t5, num_decoder_layers=3, feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
        "t5-scaled": (transformers.T5ForConditionalGeneration, transformers.T5Config(
            **t5, feed_forward_proj="gated-silu", tie_word_embeddings=True)),
        "mt5": (transformers.MT5ForConditionalGeneration, transformers.MT5Config(
            **t5, relative_attention_num_buckets=8, relative_attention_max_distance=20)),
    }  # fmt: skip


def _save_random(cls, config, directory: Path):
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():  # norms start at 1: perturb them so a swapped norm would show
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.2)
    model.save_pretrained(directory)
    return model


def _lowres_module(checkpoint):
    from flax import nnx

    from lowres.models.architecture import build_model

    graphdef, params, rest = nnx.split(build_model(checkpoint.config), nnx.Param, ...)
    nnx.replace_by_pure_dict(params, checkpoint.params)
    return nnx.merge(graphdef, params, rest)


@pytest.mark.parametrize("name", list(_hf_models()))
def test_imported_hf_model_matches_logits_and_round_trips_bitwise(name, tmp_path):
    import jax.numpy as jnp

    from lowres.interop import hf_files, hf_layout
    from lowres.interop.hf_import import read_hf_checkpoint

    cls, config = _hf_models()[name]
    hf = _save_random(cls, config, tmp_path)
    checkpoint = read_hf_checkpoint(tmp_path)
    module = _lowres_module(checkpoint)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        if config.is_encoder_decoder:
            enc = rng.integers(2, 120, (2, 9))
            enc[1, 6:] = 0
            dec = rng.integers(2, 120, (2, 7))
            dec[:, 0] = 0
            theirs = hf(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc != 0),
                        decoder_input_ids=torch.tensor(dec)).logits.numpy()  # fmt: skip
            ours = module.decode(module.encode(jnp.asarray(enc)), jnp.asarray((enc != 0).astype(np.int32)),
                                 jnp.asarray(dec))  # fmt: skip
        else:
            ids = rng.integers(2, 120, (2, 11))
            theirs = hf(input_ids=torch.tensor(ids)).logits.numpy()
            ours = module(jnp.asarray(ids))
    assert np.abs(np.asarray(ours) - theirs).max() < TOLERANCE

    original = hf_files.read_weights(tmp_path)
    again = hf_layout.to_hf_weights(checkpoint.config, checkpoint.params)
    assert set(again) == set(original)
    for key, value in original.items():
        assert again[key].dtype == value.dtype and np.array_equal(again[key], value), key


def test_sharded_weights_load_in_transformers(tmp_path):
    from lowres.interop import hf_files, hf_layout
    from lowres.interop.hf_import import read_hf_checkpoint

    cls, config = _hf_models()["llama-gqa-untied"]
    _save_random(cls, config, tmp_path / "original")
    checkpoint = read_hf_checkpoint(tmp_path / "original")
    out = tmp_path / "sharded"
    out.mkdir()
    paths = hf_files.write_weights(out, hf_layout.to_hf_weights(checkpoint.config, checkpoint.params), 20_000)
    (out / "config.json").write_text((tmp_path / "original" / "config.json").read_text())
    assert (out / hf_files.INDEX_FILE).is_file() and len(paths) > 3
    index = json.loads((out / hf_files.INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(hf_files.read_weights(tmp_path / "original"))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    state = {k: v.numpy() for k, v in loaded.state_dict().items()}
    for key, value in hf_files.read_weights(tmp_path / "original").items():
        assert np.array_equal(state[key], value), key


@pytest.mark.parametrize("model_type, message", [
    ("umt5", "umT5 gives every layer its own relative-position bias"),
    ("qwen2", "Qwen2 attention has q/k/v biases"),
    ("gpt2", "model_type 'gpt2' is not importable"),
])  # fmt: skip
def test_unrepresentable_checkpoints_are_refused_by_name(model_type, message, tmp_path):
    from lowres.interop.hf_layout import NotRepresentable, lowres_config

    with pytest.raises(NotRepresentable, match=message):
        lowres_config({"model_type": model_type}, {}, str(tmp_path / "config.json"))
    with pytest.raises(NotRepresentable, match="feed_forward_proj='relu'"):
        lowres_config({"model_type": "t5", "feed_forward_proj": "relu"}, {}, "config.json")
    with pytest.raises(NotRepresentable, match="scaled RoPE"):
        lowres_config({"model_type": "llama", "rope_scaling": {"rope_type": "llama3"}}, {}, "config.json")


def test_unrepresentable_runs_are_refused_unless_approximation_is_allowed(vocabulary):
    import dataclasses

    from lowres.checkpoints.trained_model import TrainedModel
    from lowres.interop.hf_export import ExportOptions, check_exportable
    from lowres.interop.hf_layout import NotRepresentable
    from lowres.models.config import decoder_only_config, encoder_decoder_config

    post_ln = TrainedModel.initialized(encoder_decoder_config("tiny", vocabulary.vocab_size, norm="post"), vocabulary)
    with pytest.raises(NotRepresentable, match="ModelConfig.norm='post'"):
        check_exportable(post_ln, ExportOptions(causal_approximation=True))
    prefix = TrainedModel.initialized(decoder_only_config("tiny", vocabulary.vocab_size), vocabulary)
    assert prefix.info.decoder_attention == "prefix"
    with pytest.raises(NotRepresentable, match="--causal_approximation"):
        check_exportable(prefix, ExportOptions())
    assert "prompts are attended causally" in check_exportable(prefix, ExportOptions(causal_approximation=True))[0]
    causal = dataclasses.replace(prefix, info=dataclasses.replace(prefix.info, decoder_attention="causal"))
    assert check_exportable(causal, ExportOptions()) == []


@pytest.mark.slow
def test_cli_refuses_a_prefix_lm_export_in_one_line(tmp_path, cache_dir):
    model_dir = tmp_path / "run"
    result = run_cli("train", "--gin_file=smoke.gin", f"--model_dir={model_dir}", "--no_progress",
                     '--gin.ModelConfig.architecture="decoder_only"', "--gin.TrainConfig.num_steps=1",
                     "--gin.CheckpointConfig.hf_export_every=1", env=_env(cache_dir))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("lowres: error: CheckpointConfig.hf_export_every=1:")
    assert "--causal_approximation" in result.stderr and "Traceback" not in result.stderr


# -------------------------------------------------------------------------------- continued pretraining


@pytest.fixture(scope="module")
def released_t5(tmp_path_factory, corpus):
    """A stand-in for a released checkpoint: a random T5.1.1 with a T5-layout SentencePiece model
    (pad 0, EOS 1, UNK 2, no byte fallback) trained on English only, 100 sentinels."""
    import sentencepiece as spm

    directory = tmp_path_factory.mktemp("released-t5")
    lines = corpus.mono_path("eng_Latn", "train").read_text(encoding="utf-8").splitlines()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(directory / "spiece"), vocab_size=300, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, model_type="unigram", character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    (directory / "spiece.vocab").unlink()
    config = transformers.T5Config(vocab_size=300 + 100, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                   feed_forward_proj="gated-gelu", tie_word_embeddings=False)  # fmt: skip
    _save_random(transformers.T5ForConditionalGeneration, config, directory)
    (directory / "tokenizer_config.json").write_text(json.dumps({"extra_ids": 100}))
    return directory


@pytest.mark.slow
def test_continue_from_hf_extends_the_vocabulary_and_keeps_every_weight(released_t5, tmp_path, cache_dir):
    from lowres.checkpoints.trained_model import load_trained_model
    from lowres.data.vocab.extension import read_run_extension
    from lowres.interop import hf_files, hf_layout
    from lowres.interop.hf_import import read_hf_checkpoint
    from lowres.models.surgery import VocabMatrix, resize_params

    model_dir = tmp_path / "run"
    # Learning rate 0: the run's parameters stay what the import made of the checkpoint.
    result = run_cli("train", "--gin_file=continue_from_hf.gin", f"--model_dir={model_dir}", "--no_progress",
                     f"--gin.InitConfig.hf_checkpoint='{released_t5}'", "--gin.DataConfig.languages=['yor', 'cym']",
                     "--gin.VocabularyConfig.vocab_size=600", "--gin.VocabularyConfig.extend_pieces=150",
                     "--gin.OptimizerConfig.learning_rate=0.0", "--gin.TrainConfig.num_steps=2",
                     "--gin.CheckpointConfig.save_interval_steps=2", "--gin.CheckpointConfig.hf_export_every=0",
                     "--gin.DataConfig.shuffle_buffer_size=64", env=_env(cache_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initialised from Hugging Face checkpoint" in result.stdout
    extension = read_run_extension(model_dir)
    assert extension.old_vocab_size == 400 and {"[NLU]", "<2yor_Latn>", "<2cym_Latn>"} <= set(extension.added_pieces)
    assert len(extension.added_pieces) > 100  # new Yoruba and Welsh pieces besides the reserved tokens

    model = load_trained_model(model_dir)
    assert model.config.vocab_size == extension.new_vocab_size == model.vocabulary.vocab_size
    imported = read_hf_checkpoint(released_t5)
    matrices = [VocabMatrix(("token_embed", "embedding"), 0)]
    if not imported.config.tie_embeddings:  # transformers 5 saves T5 tied whatever the config says
        matrices.append(VocabMatrix(("logits_kernel",), 1))
    expected = resize_params(imported.params, extension.id_map, "mean_of_pieces", matrices,
                             new_token_pieces=extension.new_token_pieces)  # fmt: skip
    ours, theirs = hf_layout.flatten(model.params), hf_layout.flatten(expected)
    assert set(ours) == set(theirs)
    for key in ours:
        assert np.array_equal(np.asarray(ours[key]), theirs[key]), key
    # Kept ids keep their rows (sentinels moved up with their rows); a new piece is the mean of its old pieces.
    original = hf_files.read_weights(released_t5)["shared.weight"]
    embedding = np.asarray(model.params["token_embed"]["embedding"])
    for old, new in [(5, 5), (299, 299), (300, 300 + len(extension.added_pieces)), (399, extension.new_vocab_size - 1)]:
        assert extension.old_to_new[old] == new and np.array_equal(embedding[new], original[old])
    piece_id, pieces = next((k, v) for k, v in extension.new_token_pieces.items() if len(v) > 1)
    np.testing.assert_allclose(embedding[piece_id], original[pieces].mean(axis=0), rtol=1e-6)


@pytest.mark.slow
def test_readme_loads_an_export_in_three_lines_of_python(exported):
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "from_pretrained" in b]
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) == 3, blocks
    namespace: dict = {}
    exec(blocks[0].replace("runs/quickstart-hf", str(exported["encoder_decoder"])), namespace)  # noqa: S102
    assert type(namespace["model"]).__name__ == "T5ForConditionalGeneration"
    ids = namespace["tokenizer"]("Báwo ni", return_tensors="pt").input_ids
    with torch.no_grad():
        out = namespace["model"].generate(ids, max_new_tokens=3)
    assert out.shape[0] == 1 and out[0, 0] == 0  # decoding starts from id 0, as lowres's


def test_a_failed_export_leaves_the_previous_one_intact(vocabulary, tmp_path, monkeypatch):
    from lowres.checkpoints.trained_model import TrainedModel
    from lowres.interop import hf_export, hf_tokenizer
    from lowres.models.config import encoder_decoder_config

    model = TrainedModel.initialized(encoder_decoder_config("tiny", vocabulary.vocab_size), vocabulary)
    output = tmp_path / "out"
    hf_export.export_hf(model, output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hf_tokenizer, "write_tokenizer", broken)
    with pytest.raises(OSError, match="No space left"):
        hf_export.export_hf(model, output)
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half-written directory left beside it
    assert transformers.AutoModelForSeq2SeqLM.from_pretrained(output).config.vocab_size == vocabulary.vocab_size


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--model_dir={tmp}/nothing", "--output={tmp}/out"], "holds no trained model"),
    (["--model_dir={run}", "--output={tmp}/out", "--step=999"], "999"),
    (["--model_dir={run}", "--output={run}"], "is the run directory itself"),
    (["--model_dir={run}", "--output={tmp}/out", "--eval={tmp}/missing.json"], "missing.json"),
    (["--model_dir={run}", "--output={tmp}/out", "--max_shard_mb=0"], "--max_shard_mb=0"),
])  # fmt: skip
def test_export_bad_input_gets_one_line(runs, tmp_path, argv, message, capsys):
    from lowres.cli import main

    filled = [a.format(tmp=tmp_path, run=runs["encoder_decoder"]) for a in argv]
    assert main(["export", "hf", *filled]) == 2  # in-process: the command's own code, no interpreter start-up
    stderr = capsys.readouterr().err
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("lowres: error:") and message in last and "Traceback" not in stderr, last
