"""The tokenized cache (lowres.data.cache): exact ids, reuse, resuming a killed build, refusing
another vocabulary / truncated / corrupted / stale / partial caches, host shards, progress, Beam."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lowres.data.cache import (
    CorpusSource,
    TokenizerSpec,
    build_token_cache,
    mono_entry,
    open_token_cache,
    pair_entry,
    tokenizer_spec,
)
from lowres.data.cache import build as build_lib
from lowres.data.cache.beam import beam_available
from lowres.data.text import corpora
from lowres.data.text.corpora import CorpusSpec
from lowres.errors import DataError, MissingFileError

ROOT = Path(__file__).resolve().parents[1]
BYTE_OFFSET = 3
# Text that looks like reserved tokens must encode as text, exactly as vocabulary.encode does.
TRICKY = ["[NLU] <2pan_Guru> [S2S] x", "<extra_id_0> and <extra_id_7>", "tab\tand  spaces ", "", "ਪੰਜਾਬੀ 123 ११"]


def subprocess_env() -> dict[str, str]:
    """This checkout first on the path, however lowres is installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def byte_vocabulary():
    from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
    from lowres.data.vocab.vocabulary import reserved_tokens

    return ReservedByteVocabulary(reserved_tokens(["eng", "pan", "hin"]), 100)


def write_corpus(folder: Path, langs=("eng", "pan", "hin"), files: int = 1, docs: int = 20, words: int = 3) -> CorpusSpec:
    """text:<folder>/{lang}.<i>.train.txt — `files` files of `docs` distinct lines per language."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        for part in range(files):
            lines = [f"{lang} file {part} document {i} " + " ".join(f"w{i * j}" for j in range(words)) for i in range(docs)]
            (folder / f"{lang}.{part}.train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CorpusSpec("tiny", f"text:{folder}/{{lang}}.*.{{split}}.txt", objective="causal_lm")


def decode_bytes(ids: np.ndarray) -> str:
    return bytes((np.asarray(ids) - BYTE_OFFSET).astype(np.uint8)).decode("utf-8")


def documents(cache, entry: str, field: str = "text") -> list[str]:
    arrays = cache.arrays(entry)[field]
    return [decode_bytes(arrays[i]) for i in range(len(arrays))]


def tree(directory: Path) -> dict[str, bytes]:
    """Every array file of a cache, by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.glob("entries/**/*.bin"))}


def tokens_file(cache, entry: str, field: str = "text") -> Path:
    return cache.directory / "entries" / entry / f"{field}.tokens.bin"


class CountCalls:
    """Wraps build.run_task (the in-process runner's tokenization of one part) and records its entries."""

    def __init__(self, monkeypatch):
        self.entries: list[str] = []
        original = build_lib.run_task

        def counted(ctx, task, report=None):
            self.entries.append(task.entry)
            return original(ctx, task, report)

        monkeypatch.setattr(build_lib, "run_task", counted)


# ---------------------------------------------------------------- ids


def test_ids_equal_vocabulary_encode_on_every_builtin_script(corpus, vocabulary, tmp_path):
    spm = tokenizer_spec(vocabulary)
    assert spm.kind == "sentencepiece" and spm.dtype == np.dtype("<u2")
    byte_vocab = byte_vocabulary()
    for vocab in (vocabulary, byte_vocab):
        encoder = tokenizer_spec(vocab).encoder()
        for lang in corpus.languages:
            texts = corpus.mono_path(lang, "train").read_text(encoding="utf-8").splitlines()[:15] + TRICKY
            flat, lengths = encoder.encode_batch(texts)
            expected = [list(vocab.encode(text)) for text in texts]
            assert lengths.tolist() == [len(ids) for ids in expected], lang
            assert flat.tolist() == [i for ids in expected for i in ids], lang
    # Through the spawn-context worker pool: every document of every language of the built-in corpus.
    spec = CorpusSpec("builtin", "builtin", languages=list(corpus.languages))
    cache = build_token_cache(spec, vocabulary, root=tmp_path, splits=["validation"], workers=2, progress=False)
    assert len(cache.entries) == len(corpus.languages)
    for lang in corpus.languages:
        arrays = cache.mono(lang, "validation")
        texts = [doc.text for doc in corpora.documents(spec, lang, "validation")]
        assert len(arrays) == len(texts) > 0
        for index, text in enumerate(texts):
            assert arrays[index].tolist() == list(vocabulary.encode(text)), (lang, index)
        assert arrays.tokens.dtype == np.dtype("<u2") and isinstance(arrays.tokens, np.memmap)


def test_workers_tokenize_without_tensorflow(vocabulary, tmp_path):
    """What a worker imports to tokenize (SentencePiece model and corpus readers) pulls in no TensorFlow."""
    spec = write_corpus(tmp_path / "text")
    payload = tmp_path / "job.pkl"
    payload.write_bytes(pickle.dumps((CorpusSource(spec), tokenizer_spec(vocabulary), str(tmp_path / "cache"))))
    script = (
        "import pickle, sys\n"
        "from lowres.data.cache.work import BuildContext, PartTask, tokenize_part\n"
        f"source, tok, out = pickle.loads(open({str(payload)!r}, 'rb').read())\n"
        "entry = source.entries()[0]\n"
        "record = tokenize_part(BuildContext(out, source, tok), PartTask(entry.name, 0, 1, {'fingerprint': 'x'}))\n"
        "assert record['tokens'] > 0\n"
        "heavy = [m for m in ('tensorflow', 'seqio', 'jax') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=subprocess_env(), timeout=120)


def test_token_dtype_follows_vocabulary_size():
    assert TokenizerSpec("bytes", 65536, "sha256:a").dtype == np.dtype("<u2")
    assert TokenizerSpec("bytes", 65537, "sha256:a").dtype == np.dtype("<u4")


def test_pairs_and_their_ids(tmp_path, vocabulary):
    dev = tmp_path / "flores" / "dev"
    dev.mkdir(parents=True)
    texts = {"eng": [f"sentence {i} in english" for i in range(12)], "pan": [f"ਵਾਕ {i} ਪੰਜਾਬੀ" for i in range(12)],
             "hin": [f"वाक्य {i} हिंदी" for i in range(12)]}
    for code, lines in texts.items():
        (dev / f"{code}.dev").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = CorpusSpec("pairs", f"flores:{dev}", pairs="eng-*")
    cache = build_token_cache(spec, vocabulary, root=tmp_path / "cache", workers=0, progress=False)
    src, tgt = cache.pair("eng_Latn", "pan_Guru", "dev")
    assert len(src) == len(tgt) == 12
    assert [src[i].tolist() for i in range(12)] == [list(vocabulary.encode(t)) for t in texts["eng"]]
    assert [tgt[i].tolist() for i in range(12)] == [list(vocabulary.encode(t)) for t in texts["pan"]]
    assert pair_entry("eng_Latn", "hin_Deva", "train") in cache.entries  # FLORES dev stands in for train


# ---------------------------------------------------------------- reuse and resume


def test_second_build_reuses_without_tokenizing(tmp_path, monkeypatch):
    spec = write_corpus(tmp_path / "text")
    calls = CountCalls(monkeypatch)
    first = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    assert sorted(calls.entries) == sorted(first.entries) and len(first.entries) == 3
    assert documents(first, mono_entry("pan_Guru", "train"))[2] == "pan file 0 document 2 w0 w2 w4"
    calls.entries.clear()
    second = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    assert calls.entries == [] and second.directory == first.directory
    assert sorted(second.report.reused) == sorted(first.entries) and second.report.tokenized == []
    manifest = json.loads((first.directory / "manifest.json").read_text())
    assert manifest["dtype"] == "uint16" and manifest["shard"] == {"index": 0, "count": 1}
    info = manifest["entries"][mono_entry("eng_Latn", "train")]
    assert info["status"] == "complete" and info["documents"] == 20
    assert info["fields"]["text"]["files"]["tokens"]["bytes"] == 2 * info["tokens"]
    assert len(info["fields"]["text"]["files"]["tokens"]["sha256"]) == 64


KILL_SCRIPT = """
import os, pickle, signal, sys, multiprocessing
from lowres.data.cache import build_token_cache

def main():
    spec, tok, root, kill_after, pids = pickle.loads(open(sys.argv[1], "rb").read())
    done = []
    def on_entry(name):
        done.append(name)
        if len(done) == kill_after:
            with open(pids, "w") as handle:
                handle.write(" ".join(str(p.pid) for p in multiprocessing.active_children()))
            os.kill(os.getpid(), signal.SIGKILL)
    build_token_cache(spec, tok, root=root, workers=2, progress=False, on_entry=on_entry)

if __name__ == "__main__":
    main()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_build_killed_midway_completes_only_what_is_missing(tmp_path, vocabulary, monkeypatch):
    langs = ("eng", "pan", "hin", "swa", "yor", "tir", "mlt", "cym", "eus", "isl", "sin", "zul")
    spec = write_corpus(tmp_path / "text", langs, docs=400, words=40)
    tok = tokenizer_spec(vocabulary)
    script, job, pids = tmp_path / "kill.py", tmp_path / "job.pkl", tmp_path / "pids"
    script.write_text(KILL_SCRIPT, encoding="utf-8")
    job.write_bytes(pickle.dumps((spec, tok, str(tmp_path / "cache"), 2, str(pids))))
    result = subprocess.run([sys.executable, str(script), str(job)], check=False, cwd=ROOT, env=subprocess_env(),
                            timeout=300)
    assert result.returncode == -signal.SIGKILL
    workers = [int(p) for p in pids.read_text().split()]
    assert workers, "the build ran a process pool"
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "pool workers outlived their killed parent"

    directory = build_lib.token_cache_dir(spec, tok, root=tmp_path / "cache")
    with pytest.raises(DataError, match="partial"):
        open_token_cache(directory, tok)
    names = [mono_entry(corpora.languages(spec)[i], "train") for i in range(len(langs))]
    finished = {n for n in names if (directory / "entries" / n / "record.json").exists()}
    assert len(finished) >= 2
    missing = set(names) - finished
    assert missing, "the kill came after all the work; nothing left to resume"

    calls = CountCalls(monkeypatch)
    cache = build_token_cache(spec, tok, root=tmp_path / "cache", workers=0, progress=False)
    assert sorted(calls.entries) == sorted(missing)  # only the missing entries are tokenized again
    assert set(cache.report.reused) | set(cache.report.adopted) == finished
    assert sorted(cache.report.tokenized) == sorted(set(names) - finished)
    assert not list(directory.glob("**/.*.tmp"))
    clean = build_token_cache(spec, tok, root=tmp_path / "clean", workers=0, progress=False)
    assert tree(cache.directory) == tree(clean.directory)
    open_token_cache(directory, tok, verify="full")


def test_failure_midway_keeps_finished_entries_and_parts(tmp_path, monkeypatch):
    spec = write_corpus(tmp_path / "text", files=2)
    original = build_lib.finalize_entry
    seen = []

    def failing(ctx, name, num_parts, source, parts=None):
        seen.append(name)
        if len(seen) == 2:
            raise OSError("disk full (injected)")
        return original(ctx, name, num_parts, source, parts)

    monkeypatch.setattr(build_lib, "finalize_entry", failing)
    options = {"root": tmp_path / "cache", "parts_per_entry": 2, "workers": 0, "progress": False}
    with pytest.raises(OSError, match="injected") as error:
        build_token_cache(spec, byte_vocabulary(), **options)
    assert any(f"while tokenizing {seen[1]}" in note for note in error.value.__notes__)
    monkeypatch.setattr(build_lib, "finalize_entry", original)
    calls = CountCalls(monkeypatch)
    cache = build_token_cache(spec, byte_vocabulary(), **options)
    last = [e for e in cache.entries if e not in seen]
    assert cache.report.reused == [seen[0]]  # recorded before the failure
    assert cache.report.kept_parts == 2  # the failed entry's two tokenized parts
    assert calls.entries == last * 2  # only the entry never started is tokenized (in two parts)
    assert sorted(cache.report.tokenized) == sorted([seen[1], *last])
    clean = build_token_cache(spec, byte_vocabulary(), **{**options, "root": tmp_path / "clean"})
    assert tree(cache.directory) == tree(clean.directory)


# ---------------------------------------------------------------- refusing what is not whole


def test_another_vocabulary_is_refused_with_both_fingerprints(tmp_path, vocabulary):
    spec = write_corpus(tmp_path / "text")
    cache = build_token_cache(spec, vocabulary, root=tmp_path / "cache", workers=0, progress=False)
    other = byte_vocabulary()
    expected = f"built with vocabulary {tokenizer_spec(vocabulary).fingerprint}.*this run uses {tokenizer_spec(other).fingerprint}"
    with pytest.raises(DataError, match=expected):
        open_token_cache(cache.directory, other)
    with pytest.raises(DataError, match="its ids would mean other pieces"):
        build_token_cache(spec, other, directory=cache.directory, workers=0, progress=False)
    # Chosen by key, another vocabulary simply gets its own directory.
    mine = build_token_cache(spec, other, root=tmp_path / "cache", workers=0, progress=False)
    assert mine.directory != cache.directory and mine.vocabulary_fingerprint == tokenizer_spec(other).fingerprint


def test_truncated_file_is_named_and_repair_rebuilds_it(tmp_path, monkeypatch):
    spec = write_corpus(tmp_path / "text")
    cache = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    entry = mono_entry("hin_Deva", "train")
    path = tokens_file(cache, entry)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 10)
    for attempt in (lambda: open_token_cache(cache.directory, byte_vocabulary()),
                    lambda: build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0,
                                              progress=False)):
        with pytest.raises(DataError) as error:
            attempt()
        message = str(error.value)
        assert str(path) in message and f"{size - 10} bytes but the manifest records {size}" in message
        assert "repair=True" in message and "Delete" in message
    calls = CountCalls(monkeypatch)
    repaired = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False,
                                 repair=True)
    assert calls.entries == [entry] and repaired.report.repaired == [entry]
    assert path.stat().st_size == size
    open_token_cache(cache.directory, byte_vocabulary(), verify="full")


def test_corrupted_bytes_are_detected_even_with_the_mtime_restored(tmp_path):
    spec = write_corpus(tmp_path / "text")
    cache = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    path = tokens_file(cache, mono_entry("eng_Latn", "train"))
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only the hash can tell
    with pytest.raises(DataError, match=f"{path} is corrupted"):
        open_token_cache(cache.directory)
    with pytest.raises(DataError, match="corrupted"):
        cache.verify("full")
    open_token_cache(cache.directory, verify="sizes")  # documented: sizes only


def test_changed_source_file_makes_its_entry_stale(tmp_path, monkeypatch):
    spec = write_corpus(tmp_path / "text")
    cache = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    changed = tmp_path / "text" / "pan.0.train.txt"
    with open(changed, "a", encoding="utf-8") as handle:
        handle.write("a new pan document\n")
    entry = mono_entry("pan_Guru", "train")
    with pytest.raises(DataError, match=f"entry {entry} is stale: {changed} changed"):
        open_token_cache(cache.directory, byte_vocabulary(), source=spec)
    with pytest.raises(DataError, match="stale"):
        build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False, on_stale="error")
    calls = CountCalls(monkeypatch)
    rebuilt = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    assert rebuilt.directory == cache.directory
    assert calls.entries == [entry] and rebuilt.report.stale == [entry]
    assert documents(rebuilt, entry)[-1] == "a new pan document"
    open_token_cache(cache.directory, byte_vocabulary(), source=spec)


def test_partial_and_missing_caches_are_refused(tmp_path):
    spec = write_corpus(tmp_path / "text")
    with pytest.raises(MissingFileError, match="manifest.json is missing"):
        open_token_cache(tmp_path / "nothing")
    cache = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False,
                              entries=[mono_entry("eng_Latn", "train")])
    assert cache.entries == [mono_entry("eng_Latn", "train")]
    with pytest.raises(DataError, match="no complete entry"):
        cache.mono("pan_Guru", "train")
    with pytest.raises(DataError, match="partial: 1 of 2 entries"):
        open_token_cache(cache.directory, entries=[mono_entry("eng_Latn", "train"), mono_entry("pan_Guru", "train")])


# ---------------------------------------------------------------- hosts, parts, progress


@pytest.mark.parametrize("files", [1, 4])  # 1: records interleaved across hosts; 4: whole files per host
def test_host_shards_are_disjoint_and_cover_every_document_once(tmp_path, files):
    spec = write_corpus(tmp_path / "text", files=files, docs=9)
    whole = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    hosts = [build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", shard_index=i, num_shards=2,
                               workers=0, progress=False) for i in range(2)]
    assert len({whole.directory, *(h.directory for h in hosts)}) == 3
    for entry in whole.entries:
        everything = documents(whole, entry)
        shards = [documents(host, entry) for host in hosts]
        assert all(shards) and not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == sorted(everything) and len(set(everything)) == len(everything)
        assert shards[0] == [d.text for d in corpora.documents(spec, entry.split("/")[1], "train", 0, 2)]


def test_parts_split_a_language_and_keep_its_documents(tmp_path):
    spec = write_corpus(tmp_path / "text", files=4, docs=5)
    whole = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "a", workers=0, progress=False)
    split = build_token_cache(spec, byte_vocabulary(), root=tmp_path / "b", parts_per_entry=2, workers=2,
                              progress=False)
    for entry in whole.entries:
        assert split.record(entry)["num_parts"] == 2
        assert sorted(documents(split, entry)) == sorted(documents(whole, entry))
    assert not (split.directory / "parts" / "mono").exists() or not any((split.directory / "parts").rglob("*.bin"))


def test_progress_says_language_k_of_n(tmp_path, capsys):
    spec = write_corpus(tmp_path / "text")
    build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=True)
    err = capsys.readouterr().err
    assert "tokenizing tiny: language 0 of 3" in err and "language 3 of 3" in err
    assert "tokens/s" in err and "B/s" in err
    build_token_cache(spec, byte_vocabulary(), root=tmp_path / "cache", workers=0, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- Apache Beam


def test_beam_runner_writes_the_same_cache(tmp_path, vocabulary):
    if not beam_available():
        pytest.skip("apache_beam is not installed (optional: see lowres.data.cache.beam)")
    spec = write_corpus(tmp_path / "text", files=4, docs=7)
    kwargs = {"parts_per_entry": 2, "progress": False}
    local = build_token_cache(spec, vocabulary, root=tmp_path / "local", workers=0, **kwargs)
    beam = build_token_cache(spec, vocabulary, root=tmp_path / "beam", runner="beam", **kwargs)
    assert beam.directory.name == local.directory.name
    assert tree(beam.directory) == tree(local.directory) and len(tree(local.directory)) == 6
    strip = ("mtime_ns", "built_at")

    def comparable(cache):
        return {name: {k: v for k, v in info.items() if k not in strip} | {"fields": {
            f: {"documents": d["documents"], "tokens": d["tokens"],
                "files": {r: {k: v for k, v in x.items() if k not in strip} for r, x in d["files"].items()}}
            for f, d in info["fields"].items()}} for name, info in cache.manifest["entries"].items()}

    assert comparable(beam) == comparable(local)
    assert sorted(beam.report.tokenized) == sorted(local.entries)
    again = build_token_cache(spec, vocabulary, root=tmp_path / "beam", runner="beam", **kwargs)
    assert again.report.tokenized == [] and len(again.report.reused) == 3


def test_data_cache_command_builds_once_then_reuses_and_names_bad_options(tmp_path, capsys):
    from lowres import cli

    spec = write_corpus(tmp_path / "text")
    vocab = tmp_path / "bytes.json"
    vocab.write_text(byte_vocabulary().to_json(), encoding="utf-8")
    argv = ["data", "cache", spec.source, f"--vocab={vocab}", f"--cache_dir={tmp_path / 'cache'}", "--workers=0"]
    import logging

    logger = logging.getLogger("lowres")
    before = (list(logger.handlers), logger.level, logger.propagate)
    assert cli.main(argv) == 0
    assert (list(logger.handlers), logger.level, logger.propagate) == before  # the CLI leaves logging as it was
    printed = capsys.readouterr()
    assert "token cache " in printed.err and "tokenizing 3 (local runner)" in printed.err  # start-up says what it does
    first = printed.out.strip().splitlines()[-1]
    assert first.startswith(str(tmp_path / "cache" / "tokens")) and "3 entries tokenized" in first
    assert cli.main(argv) == 0
    again = capsys.readouterr().out
    assert "0 entries tokenized" in again and "3 reused" in again
    assert cli.main(["data", "cache", spec.source, f"--cache_dir={tmp_path / 'cache'}"]) == 2
    assert "--model_dir=DIR (a run's) or --vocab=FILE" in capsys.readouterr().err
    assert cli.main([*argv[:3], f"--vocab={tmp_path / 'missing.json'}"]) == 2
    assert "missing.json" in capsys.readouterr().err
