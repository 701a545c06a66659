"""Building a token cache: once per corpus x vocabulary x host shard, in parallel, resumable.

    cache = build_token_cache(spec, "runs/x/vocab/spm.model")          # builds, or reuses what is there
    cache.mono("pan_Guru", "train").tokens                             # np.memmap of uint16 ids

The cache directory is <root>/tokens/<corpus>-<key>, the key a digest of the corpus' reader settings
and cleaning, the vocabulary fingerprint (and the model seqio loads from it), the host shard and the
number of parts per entry: every run with that vocabulary finds it; another vocabulary gets another
directory. What is already there is checked, not trusted:

* another vocabulary in an explicitly given directory: DataError naming both fingerprints;
* an entry whose source files changed (names, sizes, mtimes) since it was built is stale: it is
  rebuilt in place and the change is logged (on_stale="error" refuses instead);
* a recorded file that is truncated, missing or fails its checksum: DataError naming the file
  (repair=True rebuilds such entries);
* entries and parts an interrupted build finished are kept (their records are written after their
  arrays); everything else is tokenized now.

Runners: "local" (default) tokenizes in a spawn-context process pool (workers=0: in this process);
"beam" runs the same work as an Apache Beam pipeline (DirectRunner unless beam_options say otherwise;
see lowres.data.cache.beam for Dataflow/Flink/Spark).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import queue as queue_lib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from lowres.data.cache import store
from lowres.data.cache.sources import CacheSource, Entry, as_source
from lowres.data.cache.store import TokenCache, entry_dir
from lowres.data.cache.tokenizer import TokenizerSpec, tokenizer_spec
from lowres.data.cache.work import (
    BuildContext,
    PartTask,
    finalize_entry,
    run_task,
    usable_part,
)
from lowres.errors import ConfigError, DataError
from lowres.files import write_json

__all__ = ["BuildReport", "build_token_cache", "cache_key", "default_cache_root", "source_fingerprint",
           "token_cache_dir"]

logger = logging.getLogger(__name__)

RUNNERS = ("local", "beam")
STALE_POLICIES = ("rebuild", "error")
MANIFEST_INTERVAL_S = 2.0


def default_cache_root() -> Path:
    """Where caches live unless `root=` says otherwise: the lowres cache directory (LOWRES_CACHE_DIR)."""
    from lowres.data.text.builtin_corpus import default_cache_dir

    return default_cache_dir()


# ---------------------------------------------------------------- identity


def cache_key(source: CacheSource, tokenizer: TokenizerSpec, shard_index: int = 0, num_shards: int = 1,
              parts_per_entry: int = 1) -> dict[str, Any]:
    """Everything the cached ids depend on except the files (those are fingerprinted per entry)."""
    return {
        "format_version": store.FORMAT_VERSION,
        "source": source.identity(),
        "vocabulary": tokenizer.fingerprint,
        "tokenizer_sha256": tokenizer.tokenizer_sha256,
        "shard": [shard_index, num_shards],
        "parts_per_entry": parts_per_entry,
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def token_cache_dir(source, vocabulary, *, root: str | os.PathLike | None = None, num_sentinels: int | None = None,
                    shard_index: int = 0, num_shards: int = 1, parts_per_entry: int = 1) -> Path:
    """The directory build_token_cache uses for these settings."""
    source = as_source(source)
    key = cache_key(source, tokenizer_spec(vocabulary, num_sentinels), shard_index, num_shards, parts_per_entry)
    return _directory(source, key, root)


def _directory(source: CacheSource, key: dict, root) -> Path:
    root = Path(root) if root is not None else default_cache_root()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.name) or "corpus"
    shard = f"-host{key['shard'][0]}of{key['shard'][1]}" if key["shard"][1] > 1 else ""
    return root / "tokens" / f"{name}{shard}-{_digest(key)[:16]}"


def source_fingerprint(source: CacheSource, entry: Entry) -> dict[str, Any]:
    """{"fingerprint": "sha256:...", "files": [[path, size, mtime_ns], ...]} of one entry's files.

    Names, sizes and modification times, as make does: hashing the text itself would mean reading the
    whole corpus at every start, and a copy or re-download that keeps neither size nor mtime rebuilds."""
    files = []
    for path in source.source_files(entry):
        try:
            stat = os.stat(path)
            files.append([str(path), stat.st_size, stat.st_mtime_ns])
        except FileNotFoundError:
            files.append([str(path), -1, 0])
    return {"fingerprint": "sha256:" + _digest([entry.name, files]), "files": files}


# ---------------------------------------------------------------- report and progress


@dataclasses.dataclass
class BuildReport:
    """What one build_token_cache call did."""

    directory: Path
    tokenized: list[str] = dataclasses.field(default_factory=list)  # entries tokenized by this call
    reused: list[str] = dataclasses.field(default_factory=list)  # complete before this call
    adopted: list[str] = dataclasses.field(default_factory=list)  # finished by an interrupted build, now recorded
    kept_parts: int = 0  # parts of unfinished entries an interrupted build had finished
    stale: list[str] = dataclasses.field(default_factory=list)  # rebuilt because their files changed
    repaired: list[str] = dataclasses.field(default_factory=list)  # rebuilt because their files were damaged
    tokens: int = 0  # written by this call
    documents: int = 0
    text_bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.tokens / self.seconds if self.seconds else 0.0
        return (f"{len(self.tokenized)} entries tokenized ({self.tokens:,} tokens, {self.documents:,} documents, "
                f"{rate:,.0f} tokens/s), {len(self.reused) + len(self.adopted)} reused, "
                f"{len(self.stale)} stale rebuilt, {len(self.repaired)} repaired in {self.seconds:.1f} s")


class _Progress:
    """One progress bar over the text to tokenize (bytes, from the source files' sizes when they are
    known and uncompressed, else entries), counting from the start so rate and ETA include the time
    before the first language finishes; the description says "language k of N"."""

    def __init__(self, enabled: bool, corpus: str, groups: dict[str, list[str]], expected_bytes: int | None):
        self.enabled = enabled
        self.groups = {g: set(names) for g, names in groups.items()}
        self.group_of = {n: g for g, names in groups.items() for n in names}
        self.pairs = sum(1 for g in groups if "-" in g)
        self.languages = len(groups) - self.pairs
        self.done_groups: set[str] = set()
        self.corpus = corpus
        self.tokens = 0
        self.start = time.monotonic()
        self.by_bytes = bool(expected_bytes)
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            total = expected_bytes if self.by_bytes else sum(len(v) for v in groups.values())
            self.bar = tqdm(total=total, unit="B" if self.by_bytes else "entry", unit_scale=self.by_bytes,
                            desc=self._description(), file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def _description(self) -> str:
        done_pairs = sum(1 for g in self.done_groups if "-" in g)
        done_langs = len(self.done_groups) - done_pairs
        parts = []
        if self.languages:
            parts.append(f"language {done_langs} of {self.languages}")
        if self.pairs:
            parts.append(f"pair {done_pairs} of {self.pairs}")
        return f"tokenizing {self.corpus}: " + ", ".join(parts)

    def advance(self, documents: int, tokens: int, text_bytes: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            if self.by_bytes:
                self.bar.update(text_bytes)
            self._postfix()

    def _postfix(self) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tokens/s", refresh=False)

    def entry_done(self, name: str) -> None:
        group = self.group_of.get(name)
        if group is None:
            return
        self.groups[group].discard(name)
        if not self.groups[group]:
            self.done_groups.add(group)
        if self.bar is not None:
            if not self.by_bytes:
                self.bar.update(1)
            self.bar.set_description_str(self._description(), refresh=False)
            self._postfix()
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            if self.by_bytes and len(self.done_groups) == len(self.groups):
                self.bar.total = self.bar.n  # the file sizes were an estimate (newlines, markup)
            self.bar.set_description_str(self._description(), refresh=False)
            self._postfix()
            self.bar.close()


# ---------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked(directory: Path, progress: bool) -> Iterator[None]:
    """An exclusive flock on <directory>/.lock: one builder per cache at a time (others wait, then
    find the work done). flock is advisory and local to a host on some network filesystems."""
    with open(directory / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"another process is building token cache {directory}; waiting for it"
            logger.warning(message)
            if progress:
                print(message, file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_temporaries(directory: Path) -> None:
    """Temporary files of killed writers (safe: we hold the lock, nobody else writes here)."""
    for sub in ("entries", "parts"):
        for tmp in (directory / sub).glob("**/.*.tmp"):
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- the build


def build_token_cache(
    source,
    vocabulary,
    *,
    num_sentinels: int | None = None,
    root: str | os.PathLike | None = None,
    directory: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    entries: Sequence[str] | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    parts_per_entry: int = 1,
    workers: int | None = None,
    runner: str = "local",
    beam_options: Sequence[str] = (),
    on_stale: str = "rebuild",
    repair: bool = False,
    verify: str = "auto",
    progress: bool = True,
    on_entry: Callable[[str], None] | None = None,
    durable: bool = True,
) -> TokenCache:
    """Tokenizes what is missing from the cache of `source` x `vocabulary` x host shard; returns it opened.

    source: a CorpusSpec, a declared corpus name or SOURCE string, or any CacheSource.
    vocabulary: a vocabulary file (with num_sentinels, default 100), a loaded seqio/lowres vocabulary,
      or a TokenizerSpec.
    root / directory: the cache root (default: the lowres cache directory, LOWRES_CACHE_DIR) under
      which the directory is chosen by key, or the exact directory to use.
    splits / entries: restrict to these seqio splits / entry names (default: everything the source has).
    shard_index, num_shards: this host's shard (e.g. jax.process_index(), jax.process_count()): the
      host reads and tokenizes only its documents and keeps them in its own directory.
    parts_per_entry: split each entry into up to this many parts (whole files of multi-file sources)
      so one big language is tokenized in parallel; part of the key (document order depends on it).
    workers: processes for runner="local" (default: in-process up to IN_PROCESS_BYTES of text, else CPUs,
      at most the number of parts; 0: in-process). A script that builds with workers needs an
      `if __name__ == "__main__":` guard (spawned workers import the main module).
    runner: "local" or "beam" (beam_options: Beam pipeline arguments, default DirectRunner).
    on_stale: "rebuild" (log and rebuild entries whose files changed) or "error".
    repair: rebuild entries with damaged files instead of raising.
    verify: how reused entries are checked: "auto", "full" or "sizes" (see open_token_cache).
    progress: a progress bar on stderr ("tokenizing <corpus>: language k of N", bytes, tokens/s, ETA).
    on_entry: called with each entry's name once its arrays and record are safely on disk.
    durable: fsync each file before its rename (off only for throwaway caches).
    """
    started = time.monotonic()
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"shard_index must lie in [0, num_shards), got {shard_index} of {num_shards}")
    if runner not in RUNNERS:
        raise ConfigError(f"runner must be one of {RUNNERS}, got {runner!r}")
    if on_stale not in STALE_POLICIES:
        raise ConfigError(f"on_stale must be one of {STALE_POLICIES}, got {on_stale!r}")
    if parts_per_entry < 1:
        raise ConfigError(f"parts_per_entry must be >= 1, got {parts_per_entry}")
    store.verify_full(verify, 0)  # validates the mode
    source = as_source(source, splits)
    tokenizer = tokenizer_spec(vocabulary, num_sentinels)
    key = cache_key(source, tokenizer, shard_index, num_shards, parts_per_entry)
    directory = Path(directory) if directory is not None else _directory(source, key, root)
    available = source.entries()
    selected = _select(available, entries, source)
    directory.mkdir(parents=True, exist_ok=True)
    report = BuildReport(directory)
    with _locked(directory, progress):
        manifest = store.read_manifest(directory)
        if manifest is not None:
            store.check_vocabulary(directory, manifest, tokenizer)
            _check_key(directory, manifest, key)
        else:
            manifest = _new_manifest(key, tokenizer, source)
        _remove_temporaries(directory)
        ctx = BuildContext(str(directory), source, tokenizer, shard_index, num_shards, durable)
        plan = _plan(ctx, manifest, selected, parts_per_entry, on_stale, repair, verify, report)
        todo = {name: item for name, item in plan.items() if item is not None}
        for name, item in todo.items():
            manifest["entries"][name] = {"status": "pending", "source": item["source"]}
        _write_manifest(directory, manifest)
        if todo:
            logger.info("token cache %s: %d of %d entries cached; tokenizing %d (%s runner)", directory,
                        len(selected) - len(todo), len(selected), len(todo), runner)
            _run(ctx, todo, manifest, report, runner, workers, beam_options, progress, on_entry, source)
        _write_manifest(directory, manifest)
    report.seconds = time.monotonic() - started
    if todo:
        logger.info("token cache %s: %s", directory, report.summary())
    else:
        logger.info("token cache %s: all %d entries cached and checked in %.2f s", directory, len(selected),
                    report.seconds)
    return TokenCache(directory, manifest, report)


def _select(available: list[Entry], wanted: Sequence[str] | None, source: CacheSource) -> list[Entry]:
    if wanted is None:
        return available
    by_name = {e.name: e for e in available}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        examples = ", ".join(list(by_name)[:4])
        raise ConfigError(f"{source.name} has no entries {missing}; entries look like {examples}")
    return [by_name[name] for name in dict.fromkeys(wanted)]


def _new_manifest(key: dict, tokenizer: TokenizerSpec, source: CacheSource) -> dict[str, Any]:
    return {
        "format": store.FORMAT,
        "format_version": store.FORMAT_VERSION,
        "corpus": source.name,
        "key": key,
        "vocabulary": tokenizer.summary(),
        "dtype": tokenizer.dtype.name,
        "shard": {"index": key["shard"][0], "count": key["shard"][1]},
        "parts_per_entry": key["parts_per_entry"],
        "cleaning": key["source"].get("cleaning"),
        "entries": {},
    }


def _check_key(directory: Path, manifest: dict, key: dict) -> None:
    recorded = manifest.get("key", {})
    different = [k for k in key if recorded.get(k) != key[k]]
    if different:
        details = "; ".join(f"{k}: cache has {recorded.get(k)!r}, this build asks for {key[k]!r}" for k in different)
        raise DataError(f"token cache {directory} was built with other settings ({details}); use another directory "
                        "(leave directory= unset to get one per settings) or delete it")


def _write_manifest(directory: Path, manifest: dict) -> None:
    complete = [info for info in manifest["entries"].values() if info.get("status") == "complete"]
    manifest["totals"] = {
        "entries": len(manifest["entries"]),
        "complete": len(complete),
        "documents": sum(info["documents"] for info in complete),
        "tokens": sum(info["tokens"] for info in complete),
        "text_bytes": sum(info["text_bytes"] for info in complete),
        "bytes": sum(store.record_bytes(info) for info in complete),
    }
    fingerprints = sorted(f"{name}={info['source']['fingerprint']}" for name, info in manifest["entries"].items())
    manifest["source_fingerprint"] = "sha256:" + _digest(fingerprints)
    manifest["updated_at"] = time.time()
    write_json(directory / store.MANIFEST, manifest, indent=1)


def _plan(ctx: BuildContext, manifest: dict, selected: list[Entry], parts_per_entry: int, on_stale: str,
          repair: bool, verify: str, report: BuildReport) -> dict[str, dict | None]:
    """Per selected entry: None (usable as it is) or what to do: its parts still to tokenize."""
    directory = Path(ctx.directory)
    recorded = manifest["entries"]
    complete = [e.name for e in selected if recorded.get(e.name, {}).get("status") == "complete"]
    full = store.verify_full(verify, sum(store.record_bytes(recorded[n]) for n in complete))
    plan: dict[str, dict | None] = {}
    for entry in selected:
        fingerprint = source_fingerprint(ctx.source, entry)
        info = recorded.get(entry.name)
        if info is not None and info.get("status") == "complete":
            if info["source"]["fingerprint"] != fingerprint["fingerprint"]:
                change = store.describe_change(info["source"], fingerprint)
                if on_stale == "error":
                    raise DataError(f"token cache {directory}: entry {entry.name} is stale: {change}; build with "
                                    "on_stale='rebuild' to tokenize it again")
                logger.warning("token cache %s: entry %s is stale (%s); tokenizing it again", directory, entry.name,
                               change)
                report.stale.append(entry.name)
            else:
                problem = store.damage(entry_dir(directory, entry.name), info, full)
                if problem is None:
                    report.reused.append(entry.name)
                    plan[entry.name] = None
                    continue
                if not repair:
                    raise DataError(store.damaged_message(directory, entry.name, problem))
                logger.warning("token cache %s: entry %s is damaged (%s); tokenizing it again", directory,
                               entry.name, problem)
                report.repaired.append(entry.name)
        else:
            record = store.read_record(entry_dir(directory, entry.name))
            if (record is not None and record["source"]["fingerprint"] == fingerprint["fingerprint"]
                    and store.damage(entry_dir(directory, entry.name), record, full=False) is None):
                recorded[entry.name] = {"status": "complete", **record}
                report.adopted.append(entry.name)
                plan[entry.name] = None
                continue
        num_parts = ctx.source.num_parts(entry, ctx.shard_index, ctx.num_shards, parts_per_entry)
        tasks = [PartTask(entry.name, p, num_parts, fingerprint) for p in range(num_parts)]
        pending = [t for t in tasks if not usable_part(ctx, t)]
        report.kept_parts += len(tasks) - len(pending)
        plan[entry.name] = {"entry": entry, "source": fingerprint, "num_parts": num_parts, "tasks": pending}
    return plan


def _expected_bytes(ctx: BuildContext, todo: dict[str, dict]) -> int | None:
    """The text still to tokenize, estimated from the source files (None if compressed or unknown)."""
    shared: dict[tuple[str, str], int] = {}  # files several languages read (JSONL with a language field)
    total = 0
    for item in todo.values():
        if not item["tasks"]:
            continue
        if not item["source"]["files"]:
            return None
        share = len(item["tasks"]) / item["num_parts"]
        entry = item["entry"]
        for path, size, _ in item["source"]["files"]:
            if path.endswith((".gz", ".bz2", ".zst", ".xz")) or size < 0:
                return None
            if Path(path).name.startswith("metadata_"):
                continue
            if entry.kind == "pair":
                total += int(size * share)
            else:
                shared[(path, entry.split)] = max(shared.get((path, entry.split), 0), int(size * share))
    return (total + sum(shared.values())) // ctx.num_shards or None


def _run(ctx, todo, manifest, report, runner, workers, beam_options, progress, on_entry, source) -> None:
    groups: dict[str, list[str]] = {}
    for name, item in todo.items():
        groups.setdefault(item["entry"].group, []).append(name)
    expected = _expected_bytes(ctx, todo)
    bar = _Progress(progress, source.name, groups, expected)
    last_write = time.monotonic()
    if workers is None and expected is not None and expected <= IN_PROCESS_BYTES:
        workers = 0  # small text: starting worker processes costs more than it saves

    def done(record: dict) -> None:
        nonlocal last_write
        name = record["entry"]
        manifest["entries"][name] = {"status": "complete", **record}
        report.tokenized.append(name)
        report.tokens += record["tokens"]
        report.documents += record["documents"]
        report.text_bytes += record["text_bytes"]
        bar.entry_done(name)
        if time.monotonic() - last_write >= MANIFEST_INTERVAL_S:
            _write_manifest(Path(ctx.directory), manifest)
            last_write = time.monotonic()
        if on_entry is not None:
            on_entry(name)

    try:
        if runner == "beam":
            from lowres.data.cache.beam import run_beam

            run_beam(ctx, todo, done, bar, beam_options)
        else:
            _run_local(ctx, todo, done, bar, workers)
    finally:
        bar.close()
        _write_manifest(Path(ctx.directory), manifest)  # what finished stays recorded, even on an error


# ---------------------------------------------------------------- the local runner

# Text up to this size is tokenized in the calling process unless `workers` says otherwise: spawning
# workers (each importing numpy and sentencepiece) takes seconds, and a spawn-context pool re-imports
# the caller's __main__ module, which a script without an `if __name__ == "__main__":` guard cannot take.
IN_PROCESS_BYTES = 64 << 20


def _run_local(ctx: BuildContext, todo: dict[str, dict], done: Callable[[dict], None], bar: _Progress,
               workers: int | None) -> None:
    n_tasks = sum(len(item["tasks"]) for item in todo.values())
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, n_tasks))
    if workers == 0 or n_tasks == 0:
        for name, item in todo.items():
            record = None
            for task in item["tasks"]:
                record = _with_context(name, run_task, ctx, task, bar.advance)
            if record is None:
                record = _with_context(name, finalize_entry, ctx, name, item["num_parts"], item["source"])
            done(record)
        return
    spawn = multiprocessing.get_context("spawn")  # the parent may hold TensorFlow/JAX threads: never fork
    messages = spawn.Queue()
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_init_worker, initargs=(ctx, messages, os.getpid())) as pool:
        futures: dict = {}
        remaining = {name: len(item["tasks"]) for name, item in todo.items()}
        # Parts are handed out a few at a time so an entry's (short) finalize step runs as soon as its
        # parts are done, not after every other part: entries complete, and are recorded, as we go.
        waiting = iter([task for item in todo.values() for task in item["tasks"]])
        in_flight = 0

        def submit_parts() -> None:
            nonlocal in_flight
            while in_flight < 2 * workers:
                task = next(waiting, None)
                if task is None:
                    return
                futures[pool.submit(_worker_part, task)] = ("part", task.entry)
                in_flight += 1

        def finalize(name: str) -> None:
            item = todo[name]
            futures[pool.submit(_worker_finalize, name, item["num_parts"], item["source"])] = ("entry", name)

        for name, item in todo.items():
            if not item["tasks"]:
                finalize(name)
        submit_parts()
        try:
            while futures:
                finished, _ = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(messages, bar)
                for future in finished:
                    kind, name = futures.pop(future)
                    try:
                        result = future.result()
                    except BaseException as error:
                        error.add_note(f"while tokenizing {name} for token cache {ctx.directory}")
                        raise
                    if kind == "part":
                        in_flight -= 1
                        remaining[name] -= 1
                        if result is not None:  # a one-part entry, finalized by its worker
                            done(result)
                        elif remaining[name] == 0:
                            finalize(name)
                    else:
                        done(result)
                submit_parts()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            _drain(messages, bar)


def _with_context(name: str, function, *args):
    try:
        return function(*args)
    except BaseException as error:
        error.add_note(f"while tokenizing {name}")
        raise


def _drain(messages, bar: _Progress) -> None:
    while True:
        try:
            documents, tokens, text_bytes = messages.get_nowait()
        except (queue_lib.Empty, OSError, ValueError):
            return
        bar.advance(documents, tokens, text_bytes)


# Worker processes: the context arrives once, by the pool initializer.
_WORKER: dict[str, Any] = {}


def _init_worker(ctx: BuildContext, messages, parent: int) -> None:
    """`parent` is the building process's pid, passed in: a worker still importing when its parent was
    killed would otherwise read its new parent (init) here and never notice."""
    _WORKER["ctx"], _WORKER["messages"] = ctx, messages

    def watch() -> None:  # a worker whose parent was killed exits instead of waiting forever
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_part(task: PartTask) -> dict:
    pending = [0, 0, 0]
    last = [time.monotonic()]

    def report(documents: int, tokens: int, text_bytes: int) -> None:
        pending[0] += documents
        pending[1] += tokens
        pending[2] += text_bytes
        if time.monotonic() - last[0] >= 0.25:
            _WORKER["messages"].put(tuple(pending))
            pending[:] = [0, 0, 0]
            last[0] = time.monotonic()

    record = run_task(_WORKER["ctx"], task, report)
    if any(pending):
        _WORKER["messages"].put(tuple(pending))
    return record


def _worker_finalize(name: str, num_parts: int, source: dict) -> dict:
    return finalize_entry(_WORKER["ctx"], name, num_parts, source)
