"""The measured alternative to lowres's own index-based executor: the same examples through Grain.

Grain (`pip install grain`; not a lowres dependency) is the input library MaxText moved to. Here each
component of the built-in `ul2` mixture (quickstart shape, unpacked rows) becomes a Grain
`MapDataset` whose element j is the very example lowres's sampler cuts (`components.example(j)`),
mixed with `MapDataset.mix` by the same rates and batched with the same `RowConverter`. Printed: time
to the first batch at step 0 and at step 100,000, steady batches/s, and the same for
`IndexedStream`, side by side in one process. Run from the repository root:

    pip install grain && python benchmarks/grain_alternative.py

What it shows and does not: the per-example work is identical, so the rates compare the executors'
overhead; Grain's multiprocessing (`DataLoader(worker_count=...)`) is not used on either side.
"""

from __future__ import annotations

import json
import sys
import time

import grain
import seqio

from lowres.data.config import DataConfig
from lowres.data.streams.indexed import IndexedStream, mixture_rates
from lowres.data.tasks.prepare import prepare_data
from lowres.data.text.builtin_corpus import default_cache_dir
from lowres.data.vocab.vocabulary import VocabularyConfig
from lowres.models.architecture import architecture_for

BATCHES = 300
LATE_STEP = 100_000


def main() -> None:
    config = DataConfig(objective="ul2", inputs_length=128, targets_length=128, batch_size=8, pack=False, seed=0)
    data = prepare_data(default_cache_dir() / "bench" / "grain", config, VocabularyConfig(vocab_size=4000),
                        progress=False)  # fmt: skip
    converter = architecture_for("encoder_decoder").feature_converter(False)
    stream = IndexedStream(data.mixture, config, seqio.ShardInfo(0, 1), converter)
    rates = mixture_rates(data.mixture)

    def grain_dataset() -> grain.MapDataset:
        parts = [grain.MapDataset.range(1 << 40).map(component.examples.example) for component in stream.components]
        mixed = grain.MapDataset.mix(parts, [rates[component.task] for component in stream.components])
        return mixed.batch(config.batch_size, batch_fn=lambda examples: stream.rows.rows([[e] for e in examples], len(examples)))

    results = {}
    for name, batch_at in (("lowres IndexedStream", stream.batch), ("Grain MapDataset.mix", None)):
        dataset = grain_dataset() if batch_at is None else None
        get = batch_at or (lambda step, d=dataset: d[step])
        row = {}
        for label, step in (("first_batch_step0_s", 0), ("first_batch_step100k_s", LATE_STEP)):
            start = time.perf_counter()
            get(step)
            row[label] = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(1, BATCHES + 1):
            get(step)
        row["batches_per_s"] = BATCHES / (time.perf_counter() - start)
        results[name] = row
    width = max(map(len, results))
    print(f"{'executor':<{width}}  step-0 batch  step-100k batch  batches/s")
    for name, row in results.items():
        print(f"{name:<{width}}  {row['first_batch_step0_s']:11.3f}s  {row['first_batch_step100k_s']:14.3f}s  "
              f"{row['batches_per_s']:9.1f}")
    ratio = results["lowres IndexedStream"]["batches_per_s"] / results["Grain MapDataset.mix"]["batches_per_s"]
    print(f"rate ratio lowres/Grain: {ratio:.2f}")
    json.dump({"results": results, "ratio": ratio, "grain": getattr(grain, "__version__", "?")}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
