"""Writes a local lm-evaluation-harness task: per-language sentence continuation, multiple choice.

Each item gives the first half of a held-out sentence and four endings: its own and three from other
sentences of the same language; accuracy is how often the model's log-likelihood picks the true one
(chance 25%). Works offline on any lowres SOURCE (the built-in corpus, `flores:DIR`, `text:FILE`), so
an exported model can be scored with `lm_eval --model hf` where no dataset can be downloaded.

    python experiments/lm_eval/make_task.py --output=lm_eval_tasks [--data=builtin] [--langs=pan,yor]
    lm_eval --model hf --model_args pretrained=OUT --include_path lm_eval_tasks --tasks lowres_continuation
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TASK = "lowres_continuation"
CHOICES = 4


def halves(sentence: str) -> tuple[str, str] | None:
    """(first half, the rest with its leading space) at a word boundary, or by characters for scripts
    written without spaces; None for a sentence too short to split."""
    words = sentence.split()
    if len(words) >= 4:
        cut = len(words) // 2
        return " ".join(words[:cut]), " " + " ".join(words[cut:])
    if len(sentence) >= 16 and len(words) == 1:
        return sentence[: len(sentence) // 2], sentence[len(sentence) // 2:]
    return None


def items(sentences_by_language: dict[str, list[str]], per_language: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for lang, sentences in sorted(sentences_by_language.items()):
        split = [pair for pair in map(halves, dict.fromkeys(sentences)) if pair]
        if len(split) < CHOICES:
            continue
        for index, (context, ending) in enumerate(split[:per_language]):
            others = [e for i, (_, e) in enumerate(split) if i != index and e != ending]
            choices = [ending, *rng.sample(others, CHOICES - 1)]
            rng.shuffle(choices)
            out.append({"lang": lang, "context": context, "choices": choices, "label": choices.index(ending)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="directory for the task YAML and its items")
    parser.add_argument("--data", default="builtin", help="a lowres SOURCE (default: the built-in corpus)")
    parser.add_argument("--langs", default=None, help="languages (default: all of the source's)")
    parser.add_argument("--split", default="validation", help="split to draw sentences from")
    parser.add_argument("--per_language", type=int, default=50, help="items per language")
    args = parser.parse_args(argv)

    from lowres.data.text import corpora

    spec = corpora.spec_for_source(args.data, args.langs.split(",") if args.langs else None)
    sentences = {}
    for lang in corpora.languages(spec):
        lines = [line.strip() for doc in corpora.documents(spec, lang, args.split) for line in doc.text.splitlines()]
        sentences[lang] = [line for line in lines if line]
    rows = items(sentences, args.per_language)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    data = output / f"{TASK}.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    (output / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{context}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n",
        encoding="utf-8",
    )
    print(f"wrote {len(rows)} items in {len({r['lang'] for r in rows})} languages to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
