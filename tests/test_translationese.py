"""Translationese: sentence splitting, sharded resumable translation, TinyLM scores, filtering, data-layer loading."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lowres.translationese import build as build_lib
from lowres.translationese.build import BuildConfig, build_shard, shard_files
from lowres.translationese.filter import FilterConfig, filter_directory, keep_mask
from lowres.translationese.sentences import join_document, split_document, split_sentences
from lowres.translationese.translators import FunctionTranslator, hf_language_code, translator_from_spec

ROOT = Path(__file__).resolve().parents[1]

DOCS = [
    "Dr. Smith arrived at noon. He was late!\nThe second paragraph starts here. It has e.g. two sentences.",
    "One line only",
    "Alpha beta gamma. Delta epsilon? Zeta eta theta.\nIota kappa.\nLambda mu nu xi omicron pi rho. Sigma tau.",
    "The cost was 3.5 million. Nobody asked why.",
    "Short. Texts. Here.",
    "Last document, with a comma. And a final sentence!",
    "Seventh document is here. It ends.",
]


def reverse_words(sentences, src, tgt):
    """A deterministic stand-in for MT: each sentence's words reversed."""
    return [" ".join(reversed(s.split())) for s in sentences]


class FailingTranslator(FunctionTranslator):
    """reverse_words that dies after `fail_after` batches, like a killed process."""

    def __init__(self, fail_after: int):
        super().__init__(reverse_words, name="rev")
        self.calls, self.fail_after = 0, fail_after

    def translate(self, sentences, src, tgt):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("killed")
        return super().translate(sentences, src, tgt)


@pytest.fixture
def source(tmp_path):
    """Two English text files in paragraph layout (blank lines between documents)."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.txt").write_text("\n\n".join(DOCS[:4]) + "\n", encoding="utf-8")
    (folder / "b.txt").write_text("\n\n".join(DOCS[4:]) + "\n", encoding="utf-8")
    return f"text:{folder}/*.txt"


def config(source, output, **options):
    return BuildConfig(source=source, src="eng", tgt="pan", output=str(output), layout="paragraphs",
                       batch_size=3, chunk_documents=2, **options)  # fmt: skip


def records(directory):
    return list(build_lib.read_records(shard_files(directory)))


def expected_text(doc: str) -> str:
    return "\n".join(" ".join(reverse_words(split_sentences(p, "eng"), "eng", "pan")) for p in doc.split("\n"))


def test_sentence_split_and_reassembly_keep_order_and_boundaries():
    assert split_sentences(DOCS[0].split("\n")[0], "eng") == ["Dr. Smith arrived at noon.", "He was late!"]
    assert split_sentences("It has e.g. two sentences. The cost was 3.5 million.", "eng") == [
        "It has e.g. two sentences.", "The cost was 3.5 million."]
    assert split_sentences("ਮੈਂ ਘਰ ਗਿਆ। ਉਹ ਆਇਆ? ਹਾਂ", "pan") == ["ਮੈਂ ਘਰ ਗਿਆ।", "ਉਹ ਆਇਆ?", "ਹਾਂ"]
    assert split_sentences("我去了学校。他很高兴！好", "zho_Hans") == ["我去了学校。", "他很高兴！", "好"]
    assert split_sentences("one two three four five", "eng", max_chars=9) == ["one two", "three", "four five"]
    for doc in DOCS:
        paragraphs = split_document(doc, "eng")
        assert len(paragraphs) == doc.count("\n") + 1
        assert join_document(paragraphs, "eng") == doc
    assert join_document([["我去了学校。", "好"], ["是"]], "zho_Hans") == "我去了学校。好\n是"


def test_build_translates_documents_in_order_with_provenance(source, tmp_path):
    manifest = build_shard(config(source, tmp_path / "out"), FunctionTranslator(reverse_words, "rev"), progress=False)
    out = records(tmp_path / "out")
    assert [r["text"] for r in out] == [expected_text(d) for d in DOCS]
    assert out[0]["text"].split("\n")[0] == "noon. at arrived Smith Dr. late! was He"
    assert {(r["lang"], r["source_lang"], r["translator"]) for r in out} == {("pan_Guru", "eng_Latn", "rev")}
    assert [r["source_id"] for r in out][:2] == ["a.txt:1", "a.txt:4"] and len({r["id"] for r in out}) == len(DOCS)
    assert manifest["counts"]["documents"] == len(DOCS)
    assert manifest["counts"]["sentences"] == sum(len(s) for d in DOCS for s in split_document(d, "eng"))
    assert manifest["this_run"]["sentences_per_sec"] > 0 and manifest["translator"]["name"] == "rev"
    merged = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert merged["counts"]["documents"] == len(DOCS) and merged["source"] == source


def test_resume_after_a_kill_neither_duplicates_nor_drops(source, tmp_path):
    reference = tmp_path / "ref"
    build_shard(config(source, reference), FunctionTranslator(reverse_words, "rev"), progress=False)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        build_shard(config(source, out), FailingTranslator(fail_after=4), progress=False)
    partial = records(out)
    assert 0 < len(partial) < len(DOCS)
    with open(out / "docs-00000-of-00001.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "torn')  # a write cut off by SIGKILL
    manifest = build_shard(config(source, out), FailingTranslator(fail_after=10**6), progress=False)
    assert records(out) == records(reference)
    assert manifest["this_run"]["resumed_after"] == len(partial)
    again = build_shard(config(source, out), FailingTranslator(fail_after=0), progress=False)  # idempotent
    assert again["status"] == "complete" and records(out) == records(reference)
    with pytest.raises(ValueError, match="started with settings"):
        build_shard(dataclasses_replace(config(source, out), tgt="hin"), FunctionTranslator(reverse_words, "rev"))


def dataclasses_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def test_two_shards_equal_one_shard(source, tmp_path):
    translator = FunctionTranslator(reverse_words, "rev")
    build_shard(config(source, tmp_path / "one"), translator, progress=False)
    first = build_shard(config(source, tmp_path / "two", shard_index=0, num_shards=2), translator, progress=False)
    assert not (tmp_path / "two" / "manifest.json").exists()  # shard 1 not done yet
    build_shard(config(source, tmp_path / "two", shard_index=1, num_shards=2), translator, progress=False)
    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    assert len(shard_files(tmp_path / "two")) == 2 and 0 < first["counts"]["documents"] < len(DOCS)
    assert sorted(two, key=lambda r: r["id"]) == sorted(one, key=lambda r: r["id"])
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["counts"]["documents"] == len(DOCS)


@pytest.fixture(scope="module")
def tiny_lm():

    from lowres.checkpoints.trained_model import TrainedModel
    from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
    from lowres.models.architecture import ModelConfig, build_model

    vocabulary = ReservedByteVocabulary(num_sentinels=0)
    model_config = ModelConfig(architecture="decoder_only", preset="tiny").resolve(vocabulary.vocab_size)
    model = build_model(model_config, seed=1)
    loaded = TrainedModel.initialized(model_config, vocabulary, seed=1, targets_length=16)
    return loaded, model


def hand_perplexities(model, vocabulary, texts, window: int) -> list[float]:
    """exp(mean NLL) of each text + EOS, each window predicted from BOS, straight from the model's logits."""
    import jax

    pieces = []  # (text index, window tokens)
    for i, text in enumerate(texts):
        tokens = list(vocabulary.encode(text)) + [vocabulary.eos_id]
        pieces += [(i, tokens[s : s + window]) for s in range(0, len(tokens), window)]
    rows = np.zeros((len(pieces), window), np.int32)  # right padding cannot reach earlier positions causally
    for r, (_, piece) in enumerate(pieces):
        rows[r, 1 : len(piece)] = piece[:-1]
    log_probs = np.asarray(jax.nn.log_softmax(model(rows), axis=-1))
    totals, counts = np.zeros(len(texts)), np.zeros(len(texts))
    for r, (i, piece) in enumerate(pieces):
        totals[i] -= sum(log_probs[r, k, t] for k, t in enumerate(piece))
        counts[i] += len(piece)
    return [math.exp(t / c) for t, c in zip(totals, counts)]


def test_score_equals_hand_computed_nll(tiny_lm, source, tmp_path):
    from lowres.translationese.score import TinyLMScorer, score_directory

    loaded, model = tiny_lm
    scorer = TinyLMScorer(loaded, batch_size=4)
    build_shard(config(source, tmp_path / "out"), FunctionTranslator(reverse_words, "rev"), progress=False)
    summary = score_directory(tmp_path / "out", scorer, model={"name": "tiny"}, progress=False)
    scores = list(build_lib.read_records([tmp_path / "out" / "scores-00000-of-00001.jsonl"]))
    docs = records(tmp_path / "out")
    assert summary["documents"] == len(DOCS) and [s["id"] for s in scores] == [r["id"] for r in docs]
    texts = ["ਮੈਂ ਘਰ", "x"] + [r["text"] for r in docs]  # multi-byte text, one byte, multi-window documents
    expected = hand_perplexities(model, loaded.vocabulary, texts, 16)
    got = scorer.score_texts(texts[:2]) + scores
    assert [g["tokens"] for g in got] == [len(t.encode("utf-8")) + 1 for t in texts]
    assert [g["perplexity"] for g in got] == pytest.approx(expected, rel=1e-4)
    assert max(g["tokens"] for g in got) > 3 * 16


def write_scores(directory: Path, perplexities):
    docs = records(directory)
    lines = [json.dumps({"id": d["id"], "perplexity": p, "mean_nll": math.log(p), "tokens": 5})
             for d, p in zip(docs, perplexities)]  # fmt: skip
    (directory / "scores-00000-of-00001.jsonl").write_text("".join(line + "\n" for line in lines))


def test_filter_keeps_the_lowest_percent_and_threshold(source, tmp_path):
    assert list(keep_mask(np.array([5.0, 1.0, np.nan, 3.0, 1.0]), FilterConfig(keep_percent=40))) == [
        False, True, False, False, True]
    assert list(keep_mask(np.array([5.0, 1.0, np.nan, 3.0]), FilterConfig(max_perplexity=3.0))) == [
        False, True, False, True]
    with pytest.raises(ValueError, match="exactly one"):
        FilterConfig(keep_percent=50, max_perplexity=10)

    build_shard(config(source, tmp_path / "out"), FunctionTranslator(reverse_words, "rev"), progress=False)
    perplexities = [30.0, 2.0, 50.0, 4.0, 8.0, 1.5, 100.0]
    write_scores(tmp_path / "out", perplexities)
    report = filter_directory(tmp_path / "out", tmp_path / "kept", FilterConfig(keep_percent=43))  # 3 of 7
    kept = records(tmp_path / "kept")
    assert [r["perplexity"] for r in kept] == [2.0, 4.0, 1.5]  # source order kept
    assert (report["kept"], report["dropped"], report["cut_perplexity"]) == (3, 4, 4.0)
    assert kept[0]["score"] == pytest.approx(-math.log(2.0)) and kept[0]["translator"] == "rev"
    assert (tmp_path / "kept" / "perplexity_histogram.png").stat().st_size > 1000
    report = filter_directory(tmp_path / "out", tmp_path / "below", FilterConfig(max_perplexity=30.0))
    assert report["kept"] == 5 and report["dropped"] == 2


def test_translationese_jsonl_loads_as_a_seqio_task_with_provenance(source, tmp_path):
    import seqio

    from lowres.data.tasks.corpus_tasks import register_corpus
    from lowres.data.text import corpora
    from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
    from lowres.data.text.cleaning import CleaningConfig

    build_shard(config(source, tmp_path / "out"), FunctionTranslator(reverse_words, "rev"), progress=False)
    write_scores(tmp_path / "out", [30.0, 2.0, 50.0, 4.0, 8.0, 1.5, 100.0])
    filter_directory(tmp_path / "out", tmp_path / "kept", FilterConfig(keep_percent=43))
    spec = corpora.CorpusSpec("synthpan", f"jsonl:{tmp_path}/kept/docs-*.jsonl", kind="translationese",
                              objective="causal_lm", cleaning=CleaningConfig(min_score=-math.log(2.5)))  # fmt: skip
    registered = register_corpus(spec, ReservedByteVocabulary(num_sentinels=0), shuffle_buffer_size=4)
    assert registered.languages == ("pan_Guru",)
    task = seqio.get_mixture_or_task(registered.tasks[0])
    raw = list(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())
    assert [r["source_id"] for r in raw] == [b"a.txt:4", b"b.txt:3"]  # perplexity 4.0 is below min_score
    assert raw[0]["translator"] == b"rev" and raw[0]["source_lang"] == b"eng_Latn"
    assert raw[0]["text"].decode() == expected_text(DOCS[1]) and raw[0]["score"] == pytest.approx(-math.log(2.0))
    examples = list(task.get_dataset({"inputs": 8, "targets": 32}, "train", shuffle=False).as_numpy_iterator())
    assert examples and all(len(e["targets"]) <= 32 for e in examples)


def test_hf_adapter_with_a_tiny_random_marian_model(tmp_path):
    torch = pytest.importorskip("torch", reason="the Hugging Face adapter needs torch (not installed here)")
    transformers = pytest.importorskip("transformers", reason="the Hugging Face adapter needs transformers")
    from lowres.translationese.translators import HuggingFaceTranslator

    pytest.importorskip("sentencepiece")
    import sentencepiece as spm

    text = tmp_path / "text.txt"
    text.write_text("\n".join(DOCS * 5), encoding="utf-8")
    for name in ("source", "target"):
        spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / name), vocab_size=60,
                                       model_type="unigram", bos_id=-1, unk_id=2, eos_id=0, pad_id=1)  # fmt: skip
    pieces = spm.SentencePieceProcessor(model_file=str(tmp_path / "source.model"))
    vocab = {pieces.id_to_piece(i): i for i in range(pieces.get_piece_size())}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    for name in ("source", "target"):
        (tmp_path / f"{name}.spm").write_bytes((tmp_path / f"{name}.model").read_bytes())
    tokenizer = transformers.MarianTokenizer(str(tmp_path / "source.spm"), str(tmp_path / "target.spm"),
                                             str(tmp_path / "vocab.json"))  # fmt: skip
    config = transformers.MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                       decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=1,
                                       eos_token_id=0, decoder_start_token_id=1)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.MarianMTModel(config)
    model.save_pretrained(tmp_path / "marian")
    tokenizer.save_pretrained(tmp_path / "marian")
    translator = translator_from_spec(f"hf:{tmp_path / 'marian'}", beam=2, max_length=8)
    assert isinstance(translator, HuggingFaceTranslator) and translator.code_style == "none"
    outputs = translator.translate(["Hello there.", "One line only"], "eng", "pan")
    assert len(outputs) == 2 and all(isinstance(o, str) and "\n" not in o for o in outputs)


def test_translator_specs_and_language_codes():
    translator = translator_from_spec("py:tests.test_translationese:reverse_words")
    assert translator.translate(["a b c"], "eng_Latn", "pan_Guru") == ["c b a"]
    codes = [hf_language_code("pan", style) for style in ("nllb", "m2m", "indictrans", "none")]
    assert codes == ["pan_Guru", "pa", "pan_Guru", None]
    with pytest.raises(ValueError, match="unknown Hugging Face"):
        hf_language_code("pan", "marian")
    with pytest.raises(ValueError, match="lowres:MODEL_DIR"):
        translator_from_spec("nllb")
    with pytest.raises(ValueError, match="returned 0 translations"):
        FunctionTranslator(lambda s, a, b: [], "broken").translate(["x"], "eng", "pan")


def test_cli_build_then_filter(source, tmp_path, capsys):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lowres.cli", "translationese", "build", f"--source={source}", "--src=eng",
               "--tgt=pan", "--translator=py:tests.test_translationese:reverse_words", f"--output={out}",
               "--layout=paragraphs", "--batch_size=4", "--no_progress"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "7 documents" in result.stdout and [r["text"] for r in records(out)] == [expected_text(d) for d in DOCS]
    write_scores(out, [30.0, 2.0, 50.0, 4.0, 8.0, 1.5, 100.0])
    from lowres.cli import main  # in-process: the same entry point without a second interpreter start

    command = ["translationese", "filter", f"--input={out}", f"--output={tmp_path / 'kept'}", "--keep_percent=43"]
    assert main(command) == 0
    assert "kept 3 of 7" in capsys.readouterr().out and len(records(tmp_path / "kept")) == 3
    assert main(command[:-1]) == 2 and "exactly one of --keep_percent" in capsys.readouterr().err


def test_lowres_checkpoint_translator_decodes_in_order():

    from lowres.checkpoints.trained_model import TrainedModel
    from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
    from lowres.models.architecture import ModelConfig
    from lowres.translationese.translators import LowresTranslator

    vocabulary = ReservedByteVocabulary(reserved_tokens=["<2pan_Guru>"], num_sentinels=0)
    model_config = ModelConfig(architecture="encoder_decoder", preset="tiny").resolve(vocabulary.vocab_size)
    loaded = TrainedModel.initialized(model_config, vocabulary, inputs_length=16, targets_length=4)
    translator = LowresTranslator(loaded, beam=1, batch_size=2)
    sentences = ["Hello there.", "One line only", "Zeta eta."]
    outputs = translator.translate(sentences, "eng_Latn", "pan_Guru")
    assert len(outputs) == 3 and outputs == translator.translate(sentences[::-1], "eng_Latn", "pan_Guru")[::-1]
    assert translator.describe()["beam"] == 1 and translator.count_tokens(["ab"]) == 2
    with pytest.raises(ValueError, match="cannot translate"):
        translator.translate(["x"], "eng_Latn", "hin_Deva")


def test_tinylm_gin_config_binds_a_causal_decoder():
    import gin

    import lowres.training.trainer  # noqa: F401  (registers the configurables)
    from lowres.data.config import DataConfig
    from lowres.models.architecture import ModelConfig

    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(ROOT / "gin_configs/translationese/tinylm.gin")], [])
        model, data = ModelConfig(), DataConfig()
        assert (model.architecture, model.preset) == ("decoder_only", "translationese-28m")
        assert data.objective == "causal_lm"
        assert model.resolve(56_000).num_non_embedding_params() == pytest.approx(28.3e6, rel=0.01)
    finally:
        gin.clear_config()
