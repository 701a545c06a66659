"""Readers: formats, compression, sharding, bad input, and the seqio wrapper, on small files in tmp_path."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import logging

import pytest

from lowres.data.text import readers
from lowres.data.languages import UnknownLanguageError, normalize_language
from lowres.data.text.readers import Document, ParallelPair, ReadStats


def _texts(docs):
    return [d.text for d in docs]


def test_text_lines_and_paragraphs(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n\n two \nthree\n", encoding="utf-8")
    stats = ReadStats()
    docs = list(readers.read_text(path, "pa", "c", stats=stats))
    assert _texts(docs) == ["one", "two", "three"]
    assert docs[0] == Document("one", "pan_Guru", "c", "a.txt:1")
    assert stats.documents == 3
    paras = list(readers.read_text(path, "pan", "c", layout="paragraphs"))
    assert _texts(paras) == ["one", "two\nthree"]
    assert [d.doc_id for d in paras] == ["a.txt:1", "a.txt:3"]
    with pytest.raises(ValueError, match="layout"):
        readers.read_text(path, "pan", "c", layout="pages")


def test_compressed_files_and_sorted_globs(tmp_path):
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("gz one\ngz two\n")
    with bz2.open(tmp_path / "a.txt.bz2", "wt", encoding="utf-8") as f:
        f.write("bz one\n")
    docs = list(readers.read_text(str(tmp_path / "*.txt.*"), "en", "c"))
    assert _texts(docs) == ["bz one", "gz one", "gz two"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        readers.read_text(tmp_path / "nothing-here*", "en", "c")


@pytest.mark.skipif(importlib.util.find_spec("zstandard") is None, reason="zstandard is not installed")
def test_zstd(tmp_path):
    import zstandard

    (tmp_path / "a.txt.zst").write_bytes(zstandard.ZstdCompressor().compress("zst one\nzst two\n".encode()))
    assert _texts(readers.read_text(tmp_path / "a.txt.zst", "en", "c")) == ["zst one", "zst two"]


def test_jsonl_fields_language_and_provenance(tmp_path):
    path = tmp_path / "d.jsonl"
    records = [
        {"body": "hello", "language": "en", "id": 7, "translator": "mt", "score": 0.5},
        {"body": "ਸਤ ਸ੍ਰੀ ਅਕਾਲ"},
        {"body": "   "},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    stats = ReadStats()
    docs = list(
        readers.read_jsonl(path, "c", lang="pa", text_field="body", lang_field="language", id_field="id", stats=stats)
    )
    assert docs == [
        Document("hello", "eng_Latn", "c", "7", {"translator": "mt", "score": 0.5}),
        Document("ਸਤ ਸ੍ਰੀ ਅਕਾਲ", "pan_Guru", "c", "d.jsonl:2", None),
    ]
    assert (stats.documents, stats.skipped) == (2, 1)
    with pytest.raises(ValueError, match=r"d\.jsonl:1: record has no field 'text'"):
        list(readers.read_jsonl(path, "c", lang="en"))


def test_unknown_language_raises_naming_it(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "x", "lang": "qqqq"}) + "\n", encoding="utf-8")
    with pytest.raises(UnknownLanguageError, match="qqqq"):
        list(readers.read_jsonl(path, "c", lang_field="lang"))
    with pytest.raises(UnknownLanguageError, match="zzz"):
        readers.read_text(path, "zzz", "c")


def test_invalid_utf8_replaced_counted_and_logged(tmp_path, caplog):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nbro\xffken\n")
    stats = ReadStats()
    with caplog.at_level(logging.WARNING):
        docs = list(readers.read_text(path, "en", "c", stats=stats))
    assert _texts(docs) == ["fine", "bro\ufffdken"]
    assert stats.replaced_lines == 1
    assert "bad.txt:2" in caplog.text


def test_empty_file_warns_and_is_counted(tmp_path, caplog):
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    stats = ReadStats()
    with caplog.at_level(logging.WARNING):
        assert list(readers.read_text(tmp_path / "empty.txt", "en", "c", stats=stats)) == []
    assert stats.empty_files == 1 and stats.documents == 0
    assert "empty.txt" in caplog.text


def test_tsv_pairs_and_missing_tab(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("hello\tਸਤ ਸ੍ਰੀ ਅਕਾਲ\n\nonly-source\t\n", encoding="utf-8")
    stats = ReadStats()
    pairs = list(readers.read_tsv_pairs(path, "en", "pa", stats=stats))
    assert pairs == [ParallelPair("hello", "ਸਤ ਸ੍ਰੀ ਅਕਾਲ", "eng_Latn", "pan_Guru", "p.tsv:1")]
    assert stats.skipped == 1
    path.write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"p\.tsv:2: .*no tab"):
        list(readers.read_tsv_pairs(path, "en", "pa"))


def test_aligned_files_and_mismatch_names_both(tmp_path):
    src, tgt = tmp_path / "x.en", tmp_path / "x.pa"
    src.write_text("a\nb\nc\n", encoding="utf-8")
    tgt.write_text("A\n\nC\n", encoding="utf-8")
    stats = ReadStats()
    pairs = list(readers.read_aligned_files(src, tgt, "en", "pa", stats=stats))
    assert [(p.src, p.tgt, p.doc_id) for p in pairs] == [("a", "A", "x.en:1"), ("c", "C", "x.en:3")]
    assert stats.skipped == 1
    tgt.write_text("A\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.en has 3 lines.*x\.pa has 1"):
        list(readers.read_aligned_files(src, tgt, "en", "pa"))


def test_jsonl_pairs(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"src": "hi", "tgt": "salut", "tgt_lang": "fr"}) + "\n" + json.dumps({"src": "x", "tgt": ""}),
        encoding="utf-8",
    )
    stats = ReadStats()
    pairs = list(readers.read_jsonl_pairs(path, src_lang="en", tgt_lang="de", stats=stats))
    assert pairs == [ParallelPair("hi", "salut", "eng_Latn", "fra_Latn", "p.jsonl:1")]
    assert stats.skipped == 1


@pytest.fixture
def flores_dir(tmp_path):
    dev = tmp_path / "flores" / "dev"
    dev.mkdir(parents=True)
    (dev / "eng.dev").write_text("s1\ns2\ns3\ns4\n", encoding="utf-8")
    (dev / "pan.dev").write_text("ਇੱਕ\nਦੋ\nਤਿੰਨ\nਚਾਰ\n", encoding="utf-8")
    (dev / "cmn_Hans.dev").write_text("一\n二\n三\n四\n", encoding="utf-8")
    rows = ["URL\tdomain", "http://a\twiki", "http://a\twiki", "http://b\twiki", "http://c\tnews"]
    (tmp_path / "flores" / "metadata_dev.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return dev


def test_flores_documents_pairs_and_codes(flores_dir):
    assert sorted(readers.flores_files(flores_dir)) == ["cmn_Hans", "eng_Latn", "pan_Guru"]
    docs = list(readers.read_flores(flores_dir, "pa"))
    assert [(d.doc_id, d.text) for d in docs] == [("dev:0", "ਇੱਕ\nਦੋ"), ("dev:1", "ਤਿੰਨ"), ("dev:2", "ਚਾਰ")]
    assert all(d.lang == "pan_Guru" for d in docs)
    assert len(list(readers.read_flores(flores_dir, "eng", group_by_url=False))) == 4
    pairs = list(readers.read_flores_pairs(flores_dir, "cmn_Hans", "pan"))
    assert pairs[2] == ParallelPair("三", "ਤਿੰਨ", "cmn_Hans", "pan_Guru", "cmn_Hans.dev:3")
    (flores_dir / "zzz.dev").write_text("x\n", encoding="utf-8")
    with pytest.raises(UnknownLanguageError, match="zzz"):
        readers.flores_files(flores_dir)


def test_flores_metadata_mismatch(flores_dir):
    (flores_dir / "eng.dev").write_text("s1\ns2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"eng\.dev has 2 lines.*describes 4"):
        list(readers.read_flores(flores_dir, "eng"))


_UDHR = """<!doctype html>
<html data-code="{code}" lang="{lang}">
  <head><title>t</title></head>
  <body>
    <h1>Title</h1>
    <header><h2>Preamble</h2><p>Whereas {word} one;</p>
      <p>whereas &amp; two</p></header>
    <article data-number="1"><h2>Article 1</h2><p>All {word}
      are born free.</p></article>
    <article data-number="2"><h2>Article 2</h2><ol><li>First <b>bold</b> item</li><li>Second</li></ol></article>
  </body>
</html>
"""


def test_udhr_sections_align_across_languages(tmp_path):
    (tmp_path / "eng.html").write_text(_UDHR.format(code="eng", lang="en", word="humans"), encoding="utf-8")
    (tmp_path / "pan.html").write_text(_UDHR.format(code="pan", lang="pa", word="ਮਨੁੱਖ"), encoding="utf-8")
    docs = list(readers.read_udhr(str(tmp_path / "*.html")))
    eng = [d for d in docs if d.lang == "eng_Latn"]
    pan = [d for d in docs if d.lang == "pan_Guru"]
    assert [d.doc_id for d in eng] == [d.doc_id for d in pan] == ["0", "1", "2"]
    assert [d.text for d in eng] == [
        "Whereas humans one;\nwhereas & two",
        "All humans are born free.",
        "First bold item\nSecond",
    ]
    assert pan[1].text == "All ਮਨੁੱਖ are born free."
    assert all(d.corpus == "udhr" for d in docs)


def test_shard_files_round_robin():
    files = [f"f{i}" for i in range(5)]
    assert [p.name for p in readers.shard_files(files, 1, 2)] == ["f1", "f3"]
    with pytest.raises(ValueError, match="shard_index"):
        readers.shard_files(files, 2, 2)


@pytest.mark.parametrize("num_files", [1, 3])
def test_two_hosts_read_every_document_exactly_once(tmp_path, num_files):
    expected = []
    for f in range(num_files):
        lines = [f"file{f} doc{i}" for i in range(7)]
        (tmp_path / f"part{f}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        expected += lines
    pattern = str(tmp_path / "part*.txt")
    hosts = [_texts(readers.read_text(pattern, "en", "c", shard_index=i, num_shards=2)) for i in range(2)]
    assert all(hosts)
    assert sorted(hosts[0] + hosts[1]) == sorted(expected)


def test_seqio_source_yields_tf_examples(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("ਇੱਕ\nਦੋ\n", encoding="utf-8")
    source = readers.seqio_source(lambda split: readers.read_text(path, "pa", "mine"), splits=["train"])
    examples = list(source.get_dataset("train", shuffle=False).as_numpy_iterator())
    assert [e["text"].decode() for e in examples] == ["ਇੱਕ", "ਦੋ"]
    assert {e["lang"] for e in examples} == {b"pan_Guru"}
    assert {e["corpus"] for e in examples} == {b"mine"}


def test_invalid_utf8_skip_counts_and_names_the_line(tmp_path, caplog):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "bro\xffken"}\n')
    stats = ReadStats()
    with caplog.at_level(logging.WARNING):
        docs = list(readers.read_jsonl(path, "c", lang="en", stats=stats, invalid_utf8="skip"))
    assert _texts(docs) == ["fine"] and (stats.skipped_lines, stats.replaced_lines) == (1, 0)
    assert "bad.jsonl:2: invalid UTF-8; line skipped" in caplog.text
    with pytest.raises(ValueError, match="invalid_utf8"):
        readers.read_text(path, "en", "c", invalid_utf8="ignore")


def _zst(path, text):
    import zstandard

    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode("utf-8")))


def _write(path, text):
    """Writes text, compressed by the file's extension."""
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    elif path.suffix == ".bz2":
        with bz2.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    elif path.suffix == ".zst":
        _zst(path, text)
    else:
        path.write_text(text, encoding="utf-8")


def _make_format(tmp_path, fmt, num_files):
    """(reader taking shard_index/num_shards, every record's key) for a format spread over num_files files."""
    keys = []
    if fmt in ("text", "text.gz", "text.bz2", "text.zst", "paragraphs"):
        suffix = {"text": ".txt", "paragraphs": ".txt"}.get(fmt, ".txt." + fmt.split(".")[-1])
        for f in range(num_files):
            docs = [f"f{f} d{i}" for i in range(5)]
            keys += docs
            _write(tmp_path / f"part{f}{suffix}", ("\n\n" if fmt == "paragraphs" else "\n").join(docs) + "\n")
        layout = "paragraphs" if fmt == "paragraphs" else "lines"
        return (lambda i, n: _texts(readers.read_text(str(tmp_path / f"part*{suffix}"), "pa", "c", layout, i, n)),
                keys)
    if fmt == "jsonl":
        for f in range(num_files):
            docs = [f"f{f} d{i}" for i in range(5)]
            keys += docs
            _write(tmp_path / f"part{f}.jsonl.gz", "".join(json.dumps({"text": d}) + "\n" for d in docs))
        return lambda i, n: _texts(readers.read_jsonl(str(tmp_path / "*.jsonl.gz"), "c", "pa", shard_index=i,
                                                      num_shards=n)), keys
    if fmt in ("tsv", "jsonl_pairs"):
        for f in range(num_files):
            pairs = [(f"f{f} s{i}", f"f{f} t{i}") for i in range(5)]
            keys += [p[0] for p in pairs]
            if fmt == "tsv":
                _write(tmp_path / f"part{f}.tsv", "".join(f"{s}\t{t}\n" for s, t in pairs))
            else:
                _write(tmp_path / f"part{f}.jsonl", "".join(json.dumps({"src": s, "tgt": t}) + "\n" for s, t in pairs))
        if fmt == "tsv":
            return lambda i, n: [p.src for p in readers.read_tsv_pairs(str(tmp_path / "*.tsv"), "en", "pa", 0, 1,
                                                                       i, n)], keys
        return lambda i, n: [p.src for p in readers.read_jsonl_pairs(str(tmp_path / "*.jsonl"), "en", "pa",
                                                                     shard_index=i, num_shards=n)], keys
    if fmt == "aligned":
        keys = [f"s{i}" for i in range(7)]
        _write(tmp_path / "a.en", "\n".join(keys) + "\n")
        _write(tmp_path / "a.pa", "\n".join(f"t{i}" for i in range(7)) + "\n")
        return lambda i, n: [p.src for p in readers.read_aligned_files(tmp_path / "a.en", tmp_path / "a.pa", "en",
                                                                       "pa", i, n)], keys
    if fmt in ("flores", "flores_pairs"):
        dev = tmp_path / "dev"
        dev.mkdir()
        keys = [f"s{i}" for i in range(7)]
        _write(dev / "eng.dev", "\n".join(keys) + "\n")
        _write(dev / "pan.dev", "\n".join(f"t{i}" for i in range(7)) + "\n")
        if fmt == "flores":
            return lambda i, n: _texts(readers.read_flores(dev, "eng", shard_index=i, num_shards=n)), keys
        return lambda i, n: [p.src for p in readers.read_flores_pairs(dev, "eng", "pan", shard_index=i,
                                                                      num_shards=n)], keys
    if fmt == "udhr":
        for f, (code, word) in enumerate([("en", "humans"), ("pa", "ਮਨੁੱਖ"), ("hi", "मनुष्य")][:num_files]):
            _write(tmp_path / f"{code}.html", _UDHR.format(code=code, lang=code, word=word))
            keys += [f"{normalize_language(code)[:2]}:{n}" for n in range(3)]
        return lambda i, n: [f"{d.lang[:2]}:{d.doc_id}" for d in readers.read_udhr(str(tmp_path / "*.html"),
                                                                                    shard_index=i, num_shards=n)], keys
    raise AssertionError(fmt)


FORMATS = ["text", "paragraphs", "text.gz", "text.bz2", "text.zst", "jsonl", "tsv", "jsonl_pairs", "aligned",
           "flores", "flores_pairs", "udhr"]


@pytest.mark.parametrize("num_files", [1, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_over_two_hosts_loses_and_repeats_nothing(tmp_path, fmt, num_files):
    if fmt.endswith(".zst"):
        pytest.importorskip("zstandard")
    read, keys = _make_format(tmp_path, fmt, num_files)
    hosts = [read(i, 2) for i in range(2)]
    assert hosts[0] and hosts[1], fmt
    assert sorted(hosts[0] + hosts[1]) == sorted(read(0, 1)) == sorted(keys)


def test_flores_file_holding_a_link_name_reads_its_target(flores_dir):
    (flores_dir / "zsm.dev").write_text("a\nb\nc\nd\n", encoding="utf-8")
    (flores_dir / "msa.dev").write_text("zsm.dev", encoding="utf-8")  # a symlink stored as text by git
    files = readers.flores_files(flores_dir)
    assert files["msa_Latn"] == files["zsm_Latn"] == flores_dir / "zsm.dev"
    assert _texts(readers.read_flores(flores_dir, "msa", group_by_url=False)) == ["a", "b", "c", "d"]


def test_reader_errors_are_lowres_errors(tmp_path):
    from lowres.errors import ConfigError, DataError, MissingFileError

    with pytest.raises(MissingFileError, match="nothing-here"):
        readers.expand_paths(tmp_path / "nothing-here*.txt")
    with pytest.raises(MissingFileError, match="not a directory of FLORES"):
        readers.flores_files(tmp_path / "no-flores")
    (tmp_path / "bad.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: invalid JSON"):
        list(readers.read_jsonl(tmp_path / "bad.jsonl", "c", lang="pa"))
    (tmp_path / "p.tsv").write_text("one column\n", encoding="utf-8")
    with pytest.raises(DataError, match="no tab"):
        list(readers.read_tsv_pairs(tmp_path / "p.tsv", "en", "pa"))
    with pytest.raises(ConfigError, match="layout"):
        readers.read_text(tmp_path / "bad.jsonl", "pa", "c", layout="pages")
    with pytest.raises(ConfigError, match="invalid_utf8"):
        readers.read_text(tmp_path / "bad.jsonl", "pa", "c", invalid_utf8="drop")
    with pytest.raises(ConfigError, match="shard_index"):
        readers.shard_files([], 2, 2)
