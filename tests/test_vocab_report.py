"""Vocabulary diagnostics against hand-counted tiny cases, and `lowres vocab report` end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import seqio
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from lowres import cli
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab import report as vocab_report
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary

ROOT = Path(__file__).resolve().parents[1]
_Type = model_pb2.ModelProto.SentencePiece.Type


def hand_made_model(path: Path, byte_fallback: bool) -> Path:
    """A unigram model whose segmentations are easy to count by hand: ▁ab, ▁cd, ▁, a, b, c, d (+ bytes)."""
    model = model_pb2.ModelProto()
    model.trainer_spec.model_type = 1
    model.trainer_spec.byte_fallback = byte_fallback
    model.trainer_spec.pad_id, model.trainer_spec.eos_id, model.trainer_spec.unk_id = 0, 1, 2
    model.trainer_spec.bos_id = -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.escape_whitespaces = True
    pieces = [("<pad>", _Type.CONTROL, 0.0), ("</s>", _Type.CONTROL, 0.0), ("<unk>", _Type.UNKNOWN, 0.0)]
    if byte_fallback:
        pieces += [(f"<0x{b:02X}>", _Type.BYTE, 0.0) for b in range(256)]
    pieces += [("▁ab", _Type.NORMAL, -1.0), ("▁cd", _Type.NORMAL, -1.0), ("▁", _Type.NORMAL, -2.0)]
    pieces += [(c, _Type.NORMAL, -3.0) for c in "abcd"]
    for text, kind, score in pieces:
        piece = model.pieces.add()
        piece.piece, piece.type, piece.score = text, kind, score
    path.write_bytes(model.SerializeToString())
    return path


def test_counts_match_a_hand_computation_with_byte_fallback(tmp_path):
    vocabulary = seqio.SentencePieceVocabulary(str(hand_made_model(tmp_path / "bf.model", True)), extra_ids=3)
    # "ab cd" -> ▁ab ▁cd (2 tokens); "ab жж" -> ▁ab ▁ <D0> <B6> <D0> <B6> (6 tokens, 4 of them bytes).
    stats = vocab_report.language_stats(vocabulary, ["ab cd", "ab жж"])
    assert (stats.documents, stats.words, stats.characters, stats.bytes) == (2, 4, 10, 12)
    assert (stats.tokens, stats.byte_tokens, stats.unk_tokens) == (8, 4, 0)
    assert stats.tokens_per_word == 8 / 4 and stats.tokens_per_char == 8 / 10
    assert stats.byte_fallback_share == 4 / 8 and stats.unk_rate == 0.0


def test_counts_match_a_hand_computation_without_byte_fallback(tmp_path):
    vocabulary = seqio.SentencePieceVocabulary(str(hand_made_model(tmp_path / "nobf.model", False)), extra_ids=0)
    # "ab ж ж" -> ▁ab ▁ <unk> ▁ <unk>; "cab" -> ▁ c a b.
    stats = vocab_report.language_stats(vocabulary, ["ab ж ж", "cab"])
    assert (stats.words, stats.characters, stats.tokens, stats.byte_tokens, stats.unk_tokens) == (4, 9, 9, 0, 2)
    assert stats.unk_rate == 2 / 9 and stats.tokens_per_word == 9 / 4


def test_byte_vocabulary_counts_every_token_as_a_byte():
    stats = vocab_report.language_stats(ReservedByteVocabulary(["[NLU]"], 4), ["ab ж", "😀"])
    assert (stats.words, stats.characters, stats.bytes, stats.tokens, stats.byte_tokens) == (3, 5, 9, 9, 9)
    assert stats.byte_fallback_share == 1.0 and stats.tokens_per_char == 9 / 5


def test_report_table_and_chart(tmp_path):
    vocabulary = seqio.SentencePieceVocabulary(str(hand_made_model(tmp_path / "bf.model", True)), extra_ids=3)
    report = vocab_report.vocabulary_report(vocabulary, {"eng_Latn": ["ab cd"], "rus_Cyrl": ["ab жж"]}, {"file": "x"})
    assert report["vocabulary"] == {"file": "x", "kind": "sentencepiece", "vocab_size": vocabulary.vocab_size}
    table = vocab_report.report_table(report).splitlines()
    assert table[0].startswith("| language |") and len(table) == 4
    assert table[2] == "| eng_Latn | 1 | 2 | 5 | 2 | 1.00 | 0.400 | 0.00% | 0.00% |"
    assert table[3] == "| rus_Cyrl | 1 | 2 | 5 | 6 | 3.00 | 1.200 | 66.67% | 0.00% |"
    json_path, png_path = vocab_report.write_report(report, tmp_path / "out" / "report.json")
    assert json.loads(json_path.read_text())["languages"]["rus_Cyrl"]["tokens"] == 6
    assert png_path == tmp_path / "out" / "report.png" and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "spm.model"
    texts = {"eng_Latn": ["the cat sat on the mat with another cat"] * 20, "pan_Guru": ["ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ"] * 20}
    vocab_lib.train_vocabulary(texts, path, vocab_lib.VocabularyConfig(vocab_size=300, num_sentinels=4))
    return path


def test_cli_vocab_report_on_a_text_file(small_vocab, tmp_path):
    data = tmp_path / "yor.txt"
    data.write_text("Gbogbo ènìyàn ni a bí ní òmìnira\nthe cat\n", encoding="utf-8")
    output = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "lowres.cli", "vocab", "report", f"--vocab={small_vocab}", "--num_sentinels=4",
         f"--data=text:{data}", "--lang=yo", f"--output={output}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| yor_Latn | 2 | 9 | 39 |" in result.stdout
    report = json.loads(output.read_text())
    row = report["languages"]["yor_Latn"]
    assert row["byte_fallback_share"] > 0  # Yoruba's tone marks were never seen in training
    assert report["vocabulary"]["fingerprint"] == vocab_lib.vocabulary_fingerprint(small_vocab, 4)
    assert output.with_suffix(".png").is_file()


def test_cli_vocab_report_reads_a_run_directory(small_vocab, tmp_path, capsys):
    model_dir = tmp_path / "run"
    (model_dir / "vocab").mkdir(parents=True)
    (model_dir / "vocab" / "spm.model").write_bytes(small_vocab.read_bytes())
    (model_dir / "lowres.json").write_text(json.dumps({"model": {}, "vocabulary": "vocab/spm.model", "num_sentinels": 4,
                                                      "inputs_length": 8, "targets_length": 8}))
    data = tmp_path / "pan.txt"
    data.write_text("ਸਾਰੇ ਮਨੁੱਖ\n", encoding="utf-8")
    assert cli.main(["vocab", "report", f"--model_dir={model_dir}", f"--data=text:{data}", "--lang=pan"]) == 0
    assert "| pan_Guru | 1 | 2 | 10 |" in capsys.readouterr().out
    assert cli.main(["vocab", "report", f"--model_dir={tmp_path}", f"--data=text:{data}", "--lang=pan"]) == 2
    assert "not a lowres model directory" in capsys.readouterr().err


def test_cli_vocab_report_on_a_byte_vocabulary_and_a_missing_file(tmp_path, capsys):
    vocab_file = tmp_path / "bytes.json"
    vocab_file.write_text(ReservedByteVocabulary(["[NLU]"], 4).to_json())
    data = tmp_path / "amh.txt"
    data.write_text("ሰላም ለዓለም\n", encoding="utf-8")
    assert cli.main(["vocab", "report", f"--vocab={vocab_file}", "--num_sentinels=4", f"--data=text:{data}",
                     "--lang=am"]) == 0
    assert "| amh_Ethi | 1 | 2 | 8 | 22 | 11.00 | 2.750 | 100.00% | 0.00% |" in capsys.readouterr().out
    assert cli.main(["vocab", "report", f"--vocab={tmp_path / 'missing.model'}", f"--data=text:{data}",
                     "--lang=am"]) == 2
    assert "missing.model does not exist" in capsys.readouterr().err
