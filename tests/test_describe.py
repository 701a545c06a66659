"""`lowres data describe`: languages, documents, bytes, tokens, rates and epochs, in-process and via the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowres.data.text import corpora
from lowres.data.tasks import describe
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.mixing.rates import temperature_rates
from tests.test_corpora import LANGS, TEXTS, make_flores

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def flores_dir(tmp_path_factory) -> Path:
    return make_flores(tmp_path_factory.mktemp("describe"))


def _bytes(code: str) -> int:
    return sum(len(t.encode()) for t in TEXTS[code]) + 30  # 10 documents of 4 lines: 3 newlines each


def test_rows_hold_sizes_rates_and_epochs(flores_dir):
    rows, stats = describe.describe_rows(describe.resolve(f"flores:{flores_dir}"), tokens=50_000)
    sizes = {"eng_Latn": _bytes("eng"), "hin_Deva": _bytes("hin"), "pan_Guru": _bytes("pan")}
    rates = temperature_rates(sizes, 0.3)
    assert [r.lang for r in rows] == LANGS
    for row in rows:
        assert (row.documents, row.bytes, row.tokens) == (10, sizes[row.lang], None)
        assert row.rate == pytest.approx(rates[row.lang])
        assert row.epochs == pytest.approx(rates[row.lang] * 50_000 / sizes[row.lang])
    text = describe.describe(f"flores:{flores_dir}", tokens=50_000)
    assert "bytes-only" in text and "epochs@50,000" in text and "total (3 languages)" in text


def test_mixture_name_keeps_its_objective_and_unknown_names_fail(flores_dir):
    corpora.declare_corpus(corpora.CorpusSpec("desc", f"flores:{flores_dir}", pairs="hin-pan"))
    assert describe.resolve("desc.causal_lm").objective == "causal_lm"
    assert "parallel pairs: hin_Deva-pan_Guru" in describe.describe("desc")
    with pytest.raises(ValueError, match="neither a source"):
        describe.resolve("nothing.causal_lm")
    with pytest.raises(ValueError, match="unknown objective"):
        describe.resolve("desc.nonsense")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "lowres.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_tokens_are_counted_with_a_vocabulary(tmp_path, flores_dir):
    vocab_path = tmp_path / "spm.model"
    vocab_lib.train_sentencepiece([t for lines in TEXTS.values() for t in lines], vocab_path,
                                  vocab_lib.VocabularyConfig(vocab_size=400), languages=LANGS)
    vocabulary = vocab_lib.load_vocabulary(vocab_path, 100)
    corpora.declare_corpus(corpora.CorpusSpec("tok", f"flores:{flores_dir}"))
    rows, _ = describe.describe_rows(describe.resolve("tok"), tokens=1000, vocabulary=vocabulary)
    pan = next(row for row in rows if row.lang == "pan_Guru")
    expected = sum(len(vocabulary.encode("\n".join(TEXTS["pan"][i:i + 4]))) for i in range(0, 40, 4))
    assert pan.tokens == expected and pan.epochs == pytest.approx(pan.rate * 1000 / expected)
    assert "bytes-only" not in describe.describe("tok", 1000, vocabulary)


def test_cli_describes_a_gin_declared_mixture(tmp_path, flores_dir, capsys):
    gin_file = tmp_path / "tiny.gin"
    gin_file.write_text(
        "import lowres.data.text.corpora\n"
        'tiny/CorpusSpec.name = "gintiny"\n'
        f'tiny/CorpusSpec.source = "flores:{flores_dir}"\n'
        "tiny/CorpusSpec.cleaning = @CleaningConfig()\n"
        "CleaningConfig.min_chars = 3\n"
        "declared_corpora.specs = [@tiny/CorpusSpec()]\n"
    )
    # In-process (a subprocess would spend most of its time importing TensorFlow again); the
    # subprocess tests below cover the entry point itself.
    import gin

    from lowres import cli

    gin.clear_config()
    try:
        assert cli.main(["data", "describe", "gintiny.causal_lm", "--gin_file", str(gin_file), "--tokens", "1000"]) == 0
    finally:
        gin.clear_config()
    out = capsys.readouterr().out
    assert "mixture gintiny.causal_lm" in out and "bytes-only" in out and "epochs@1,000" in out
    pan_row = next(line for line in out.splitlines() if line.startswith("pan_Guru"))
    assert "Punjabi" in pan_row and f"{_bytes('pan'):,}" in pan_row.split()
    assert "monolingual tasks: 3, one per language (gintiny.<lang>." in out
    assert "dropped: too_short" in out  # the cleaning report of a corpus with cleaning on
    result = _run("data", "describe", "--model_dir", str(tmp_path / "norun"))
    assert result.returncode == 2 and "no trained model" in result.stderr


def test_cli_unknown_source_is_one_line_exit_2():
    result = _run("data", "describe", "nowhere")
    assert result.returncode == 2
    assert "unknown data source 'nowhere'" in result.stderr and "Traceback" not in result.stderr


def test_builtin_rows_match_the_corpus_files(corpus):
    rows, _ = describe.describe_rows(describe.resolve("builtin"))
    train = {row["lang"]: row for row in corpus.describe() if row["split"] == "train"}
    assert [r.lang for r in rows] == list(corpus.languages)
    for row in rows:
        assert row.documents == train[row.lang]["documents"]
        assert row.bytes == train[row.lang]["bytes"] - row.documents  # the file's size less one newline a line
