"""The token-cache build as an Apache Beam pipeline, for corpora one machine cannot tokenize in time.

    build_token_cache(spec, vocab, runner="beam")                      # DirectRunner, in this process
    build_token_cache(spec, vocab, runner="beam", beam_options=[
        "--direct_num_workers=8", "--direct_running_mode=multi_processing"])   # local, 8 processes

The pipeline is Create(part tasks) -> Reshuffle -> run_task -> GroupByKey(entry) -> finalize_entry,
the very functions the local runner calls, so both write byte-identical arrays; the driver then
records the entries' records in the manifest (resuming works the same: parts and entries an
interrupted pipeline finished are kept). Like seqio's cache_tasks_main, it needs a cluster runner
only for scale:

    Dataflow: beam_options=["--runner=DataflowRunner", "--project=P", "--region=R",
              "--temp_location=gs://BUCKET/tmp", "--setup_file=./setup.py"]   (or --sdk_container_image)
    Flink:    ["--runner=FlinkRunner", "--flink_master=HOST:8081", "--environment_type=PROCESS", ...]
    Spark:    ["--runner=SparkRunner", "--spark_master_url=spark://HOST:7077", ...]

Requirements on a cluster: the cache root and the corpus files are POSIX paths every worker sees (a
shared filesystem such as Filestore/NFS, or gcsfuse mounts of the same buckets at the same paths in
the worker image), and the workers have lowres and sentencepiece installed; for file sources they
never import TensorFlow. Use parts_per_entry (e.g. 64) so a large language is spread over workers.

Apache Beam is optional (pip install apache-beam). Beam 2.77 pins protobuf < 7, while
sentencepiece 0.2.3's generated model code needs protobuf >= 7.36: install it with
`sentencepiece<0.2.3` (0.2.2 works) or in a separate environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from lowres.data.cache.store import entry_dir, read_record
from lowres.data.cache.work import BuildContext, finalize_entry, run_task
from lowres.errors import ConfigError, DataError

__all__ = ["beam_available", "run_beam"]


def beam_available() -> bool:
    try:
        import apache_beam  # noqa: F401
    except Exception:  # noqa: BLE001 (ImportError, or a protobuf VersionError from a mismatched environment)
        return False
    return True


def _import_beam():
    try:
        import apache_beam as beam
    except Exception as error:
        raise ConfigError(
            f"runner='beam' needs Apache Beam, which does not import here ({type(error).__name__}: {error}); "
            "pip install apache-beam 'sentencepiece<0.2.3' (Beam pins protobuf < 7), or use runner='local'"
        ) from error
    return beam


def _tokenize(task, ctx: BuildContext):
    if run_task(ctx, task) is None:  # a part of a multi-part entry: finalized after GroupByKey
        yield task.entry, task.part


def _finalize(element, ctx: BuildContext, plan: dict):
    name, _ = element
    num_parts, source = plan[name]
    finalize_entry(ctx, name, num_parts, source)
    return name


def run_beam(ctx: BuildContext, todo: dict[str, dict], done: Callable[[dict], None], bar,
             options: Sequence[str] = ()) -> None:
    """Runs the parts and entries of `todo` on Beam; calls `done(record)` for each finished entry."""
    beam = _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    tasks = [task for item in todo.values() for task in item["tasks"]]
    ready = [name for name, item in todo.items() if not item["tasks"]]
    plan = {name: (item["num_parts"], item["source"]) for name, item in todo.items()}

    reported: set[str] = set()
    lock = threading.Lock()

    def collect() -> None:
        with lock:
            for name, item in todo.items():
                if name in reported:
                    continue
                record = read_record(entry_dir(Path(ctx.directory), name))
                if record is not None and record["source"]["fingerprint"] == item["source"]["fingerprint"]:
                    reported.add(name)
                    bar.advance(record["documents"], record["tokens"], record["text_bytes"])
                    done(record)

    stop = threading.Event()

    def poll() -> None:  # progress while the pipeline runs: entries whose records have appeared
        while not stop.wait(1.0):
            collect()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        with beam.Pipeline(options=PipelineOptions(list(options) or ["--runner=DirectRunner"])) as pipeline:
            parts = (pipeline | "PartTasks" >> beam.Create(tasks) | "Spread" >> beam.Reshuffle()
                     | "Tokenize" >> beam.FlatMap(_tokenize, ctx))
            finished = pipeline | "FinishedParts" >> beam.Create([(name, -1) for name in ready])
            _ = ((parts, finished) | "AllParts" >> beam.Flatten() | "ByEntry" >> beam.GroupByKey()
                 | "Finalize" >> beam.Map(_finalize, ctx, plan))
    finally:
        stop.set()
        poller.join()
    collect()
    missing = [name for name in todo if name not in reported]
    if missing:
        raise DataError(f"the Beam pipeline finished but {len(missing)} entries have no record (e.g. {missing[:3]}); "
                        "run the build again")
