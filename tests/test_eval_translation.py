"""Translation metrics equal sacrebleu's own; `lowres eval` reports them per direction beside bits per byte,
for several models side by side, with JSON, markdown and PNG outputs."""

import json

import pytest
import sacrebleu

from lowres.evaluation import report
from lowres.evaluation.translation import evaluate_directions, parse_directions
from lowres.text_metrics import translation_scores

HYPOTHESES = ["The cat sat on the mat.", "A quick brown dog jumps.", "Rights are equal for all humans", "Hello"]
REFERENCES = ["The cat is sitting on the mat.", "The quick brown fox jumps.", "All humans have equal rights.",
              "Hello there!"]


def test_chrf_and_bleu_equal_sacrebleu_on_fixed_files(tmp_path):
    hyp_file, ref_file = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp_file.write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    ref_file.write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    hyps, refs = hyp_file.read_text().splitlines(), ref_file.read_text().splitlines()
    scores = translation_scores(hyps, refs)
    assert scores["chrf++"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score)
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    assert scores["bleu"] == pytest.approx(bleu.score)
    assert scores["length_ratio"] == pytest.approx(bleu.sys_len / bleu.ref_len)
    assert "nw:2" in scores["chrf++_signature"] and "tok:13a" in scores["bleu_signature"]
    perfect = translation_scores(refs, refs)
    assert perfect["chrf++"] == pytest.approx(100.0) and perfect["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="align"):
        translation_scores(hyps[:2], refs)


def test_directions_are_parsed_and_scored_on_flores_layout(tmp_path):
    assert parse_directions("eng-pan,pan_Guru-eng_Latn") == [("eng_Latn", "pan_Guru"), ("pan_Guru", "eng_Latn")]
    with pytest.raises(ValueError, match="SRC-TGT"):
        parse_directions("eng")
    (tmp_path / "eng_Latn.dev").write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    (tmp_path / "fra_Latn.dev").write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    copy_source = lambda sentences, target: list(sentences)  # noqa: E731
    results = evaluate_directions(copy_source, tmp_path, "dev", [("fra_Latn", "eng_Latn")], limit=3)
    row = results["fra_Latn-eng_Latn"]
    assert row["sentences"] == 3
    assert row["chrf++"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES[:3], [REFERENCES[:3]], word_order=2).score)
    with pytest.raises(FileNotFoundError, match="pan_Guru"):
        evaluate_directions(copy_source, tmp_path, "dev", [("eng_Latn", "pan_Guru")])


def fake_report(name, bpb, chrf):
    return {"model_dir": f"/runs/{name}", "step": 5, "source": "flores:x (dev)", "mean_bits_per_byte": bpb,
            "languages": {"eng_Latn": {"bits_per_byte": bpb, "unigram_bits_per_byte": 5.0, "documents": 2,
                                       "bytes": 10, "tokens": 4, "nll_per_token": 1.0, "nll_per_word": 2.0}},
            "translation": {"eng_Latn-pan_Guru": {"chrf++": chrf, "bleu": 1.0, "length_ratio": 0.9,
                                                  "sentences": 2, "chrf++_signature": "s", "bleu_signature": "b"}}}


def test_outputs_compare_models_side_by_side(tmp_path):
    reports = [fake_report("a", 3.5, 20.0), fake_report("b", 2.25, 31.5)]
    markdown, paths = report.write_outputs(reports, tmp_path / "eval.json")
    assert json.loads(paths[0].read_text())["models"][1]["model_dir"] == "/runs/b"
    assert "| eng_Latn | 3.500 | 2.250 |" in markdown and "31.50 / 1.00" in markdown
    assert paths[1].read_text().strip() == markdown
    assert paths[2].suffix == ".png" and paths[2].read_bytes()[:4] == b"\x89PNG"
    single, _ = report.write_outputs(reports[:1], tmp_path / "one.json")
    assert "| eng_Latn-pan_Guru | 2 | 20.00 | 1.00 | 0.900 |" in single


@pytest.mark.slow
def test_eval_reports_bits_per_byte_and_chrf_for_two_models(tmp_path):
    from tests.test_translate import SENTENCES, make_model_dir

    flores = tmp_path / "flores"
    flores.mkdir()
    (flores / "eng_Latn.dev").write_text("\n".join(SENTENCES[0::2]) + "\n", encoding="utf-8")
    (flores / "pan_Guru.dev").write_text("\n".join(SENTENCES[1::2] + ["ਹੈ।"]) + "\n", encoding="utf-8")
    first = make_model_dir(tmp_path / "a", seed=0)
    second = tmp_path / "b"
    second.mkdir()
    (second / "vocab").symlink_to(first / "vocab")
    make_model_dir(second, seed=1)
    reports = report.run_eval([first, second], f"flores:{flores}", batch_size=4, translate="eng-pan",
                              translate_limit=2)
    assert [r["model_dir"] for r in reports] == [str(first), str(second)]
    for r in reports:
        assert set(r["languages"]) == {"eng_Latn", "pan_Guru"}
        assert 0 < r["languages"]["pan_Guru"]["bits_per_byte"] < 30
        row = r["translation"]["eng_Latn-pan_Guru"]
        assert row["sentences"] == 2 and 0 <= row["chrf++"] <= 100 and "version" in row["bleu_signature"]
    assert reports[0]["languages"]["eng_Latn"]["bits_per_byte"] != reports[1]["languages"]["eng_Latn"]["bits_per_byte"]


def test_seqio_task_metrics_use_the_tasks_postprocessor_and_metric_fns():
    import numpy as np
    import seqio
    import tensorflow as tf

    from lowres.evaluation.seqio_metrics import evaluate_task
    from lowres.text_metrics import chrf_bleu

    pairs = [("un chat", "a cat"), ("deux chiens", "two dogs"), ("bonjour", "hello there")]
    vocabulary = seqio.ByteVocabulary()

    def dataset_fn(split, shuffle_files, seed=None):
        return tf.data.Dataset.from_tensor_slices(
            {"inputs": [s for s, _ in pairs], "targets": [t for _, t in pairs]})

    def mean_score(targets, scores):
        return {"mean_log_likelihood": float(np.mean(scores))}

    name = "test_eval_translation.fr_en"
    seqio.TaskRegistry.remove(name)
    task = seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(dataset_fn, splits=["validation"]),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={k: seqio.Feature(vocabulary, add_eos=True) for k in ("inputs", "targets")},
        postprocess_fn=lambda text, **kwargs: text.strip().lower(), metric_fns=[chrf_bleu, mean_score],
    )
    by_input = {tuple(vocabulary.encode(s)): t for s, t in pairs}

    def shouting_predictor(batch):  # right words, wrong case: only the postprocessor makes them match
        return [vocabulary.encode(" " + by_input[tuple(x[:-1])].upper()) for x in batch]

    def length_scorer(examples):
        return np.asarray([-float(len(targets)) for _, targets in examples])

    metrics = evaluate_task(task, shouting_predictor, length_scorer, batch_size=2)
    assert metrics["chrf++"] == pytest.approx(100.0)  # postprocessed predictions equal the targets
    same = [t for _, t in pairs]
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(same, [same]).score)
    assert metrics["mean_log_likelihood"] == pytest.approx(-np.mean([len(t) + 1 for _, t in pairs]))
    seqio.TaskRegistry.remove(name)
