"""The translationese recipe's own logic (experiments/translationese/run.py), without running the recipe:
held-out split, data stage, extension sizing, stage skipping and the results writers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("translationese_recipe_run", ROOT / "experiments/translationese/run.py")
recipe = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recipe
_spec.loader.exec_module(recipe)


def test_heldout_split_keeps_whole_documents_and_never_overlaps():
    urls = ["a"] * 3 + ["b"] * 4 + ["c"] * 2 + ["d"] * 5 + ["e"] * 3
    train, heldout = recipe.heldout_split(urls, 7)
    assert not set(train) & set(heldout)
    assert sorted(train + heldout) == list(range(len(urls)))
    assert len(heldout) >= 7 and heldout == list(range(heldout[0], len(urls)))
    assert urls[train[-1]] != urls[heldout[0]]  # the cut falls between documents
    assert {urls[i] for i in train}.isdisjoint({urls[i] for i in heldout})
    with pytest.raises(ValueError, match="heldout_lines"):
        recipe.heldout_split(urls, len(urls))
    with pytest.raises(ValueError, match="every line"):
        recipe.heldout_split(["x"] * 5, 2)


def test_documents_by_url_joins_runs_of_one_url():
    lines = ["s0", "s1", "s2", "s3", "s4"]
    assert recipe.documents_by_url(lines, ["u", "u", "v", "w", "w"], [0, 1, 2, 3]) == ["s0 s1", "s2", "s3"]


def _udhr(path: Path, lang: str, sections: list[str]) -> None:
    articles = "".join(f'<article data-number="{i}"><p>{s}</p></article>' for i, s in enumerate(sections, 1))
    path.write_text(f'<html lang="{lang}"><body>{articles}</body></html>', encoding="utf-8")


def test_data_stage_never_trains_on_the_heldout_lines(tmp_path, corpus):
    shared = tmp_path / "shared"
    (shared / "flores" / "dev").mkdir(parents=True)
    urls = [f"https://x/{i // 3}" for i in range(30)]  # ten documents of three lines
    (shared / "flores" / "metadata_dev.tsv").write_text("URL\tdomain\n" + "".join(f"{u}\tnews\n" for u in urls))
    (shared / "flores" / "dev" / "eng.dev").write_text("".join(f"english line {i}\n" for i in range(30)))
    (shared / "flores" / "dev" / "pan.dev").write_text("".join(f"ਪੰਜਾਬੀ ਲਾਈਨ {i}\n" for i in range(30)))
    (shared / "udhr").mkdir()
    _udhr(shared / "udhr" / "eng.html", "en", ["All humans are free.", "Everyone has rights."])
    _udhr(shared / "udhr" / "pan.html", "pa", ["ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਹਨ।"])
    (shared / "tatoeba" / "eng-xyz").mkdir(parents=True)
    (shared / "tatoeba" / "eng-xyz" / "test.eng").write_text("".join(f"Tom saw {i} cats.\n" for i in range(10)))
    config = recipe.RecipeConfig(flores_dir=str(shared / "flores" / "dev"), udhr_dir=str(shared / "udhr"),
                                 tatoeba_dir=str(shared / "tatoeba"), heldout_lines=7, english_sentences=8,
                                 sentences_per_document=3)  # fmt: skip
    out = tmp_path / "out"
    result = recipe.stage_data(config, out)
    heldout = (out / "data/heldout/pan.txt").read_text(encoding="utf-8").splitlines()
    assert heldout == [f"ਪੰਜਾਬੀ ਲਾਈਨ {i}" for i in range(21, 30)]  # 3 whole documents >= 7 lines
    assert result["flores_heldout_lines"] == 9 and result["flores_train_lines"] == 21
    training = (out / "data/mt/train.tsv").read_text(encoding="utf-8") + (out / "data/clean/pan.txt").read_text(encoding="utf-8")
    assert not any(line in training for line in heldout) and "ਪੰਜਾਬੀ ਲਾਈਨ 20" in training
    assert "english line 21" not in training
    clean = (out / "data/clean/pan.txt").read_text(encoding="utf-8").splitlines()
    assert clean[0] == "ਪੰਜਾਬੀ ਲਾਈਨ 0 ਪੰਜਾਬੀ ਲਾਈਨ 1 ਪੰਜਾਬੀ ਲਾਈਨ 2" and clean[-1] == "ਸਾਰੇ ਮਨੁੱਖ ਆਜ਼ਾਦ ਹਨ।"
    english = (out / "data/english/eng.txt").read_text(encoding="utf-8").split("\n\n")
    assert english[:3] == ["All humans are free.", "Everyone has rights.", "Tom saw 0 cats.\nTom saw 1 cats.\nTom saw 2 cats."]
    assert result["english_documents"] == 2 + 3 and result["english_tatoeba_sentences"] == 8


def test_extension_documents_reach_the_byte_fraction():
    docs = ["a" * 10, "b" * 10, "c" * 10, "d" * 10]
    assert recipe.extension_documents(docs, synthetic_bytes=200, fraction=0.1) == docs[:2]
    assert recipe.extension_documents(docs, synthetic_bytes=100, fraction=0.1) == docs[:1]
    assert recipe.extension_documents(docs, synthetic_bytes=10_000, fraction=0.1) == docs


def test_run_stages_skips_finished_stages_and_resumes_after_a_failure(tmp_path):
    calls: list[str] = []

    def stage(name, fail=False):
        def fn(config, out):
            calls.append(name)
            if fail:
                raise RuntimeError("killed")
            return {"name": name}
        return fn

    config = recipe.RecipeConfig()
    functions = {"a": stage("a"), "b": stage("b", fail=True), "c": stage("c")}
    with pytest.raises(RuntimeError):
        recipe.run_stages(config, tmp_path, functions, ["a", "b", "c"])
    assert calls == ["a", "b"] and not (tmp_path / "stages/b.json").exists()
    functions["b"] = stage("b")
    timings = recipe.run_stages(config, tmp_path, functions, ["a", "b", "c"])
    assert calls == ["a", "b", "b", "c"] and set(timings) == {"a", "b", "c"}
    assert json.loads((tmp_path / "stages/c.json").read_text())["result"] == {"name": "c"}
    recipe.run_stages(config, tmp_path, functions, ["a", "b", "c"])
    assert calls == ["a", "b", "b", "c"]


def test_results_writers_from_a_fake_results_dict(tmp_path):
    sizes = {"documents": 10, "bytes": 1234, "tokens": 300}
    models = [{"model": name, "data": data, "steps": 300 + 60 * (len(data) - 1), "bits_per_byte": bpb,
               "sizes": {d: sizes for d in data}}
              for (name, _, _), data, bpb in zip(recipe.MODELS, [["clean"], ["synthetic"], ["synthetic", "extension"],
                                                                   ["filtered"], ["filtered", "extension"]],
                                                  [2.5, 3.25, 2.875, 3.0, 2.75])]  # fmt: skip
    results = {"heldout": {"documents": 203, "bytes": 70000, "tokens": 20000}, "unigram_bits_per_byte_in_sample": 4.5,
               "models": models, "filter": {"documents": 40, "kept": 20, "keep_percent": 50.0},
               "synthetic_examples": ["ਸਿੰਥੈਟਿਕ ਪਾਠ"], "timings_s": {"data": 1.0, "mt": 120.0}}  # fmt: skip
    paths = recipe.write_results(results, tmp_path / "results")
    assert [p.name for p in paths] == ["results.json", "results.md", "results.png"]
    assert json.loads(paths[0].read_text()) == results
    markdown = paths[1].read_text()
    assert "| synthetic+clean10 | synthetic then extension | 360 | 10 + 10 | 1,234 + 1,234 | 300 + 300 | 2.875 |" in markdown
    assert "| clean | clean | 300 | 10 | 1,234 | 300 | 2.500 |" in markdown
    assert "- ਸਿੰਥੈਟਿਕ ਪਾਠ" in markdown and "kept 20 of 40" in markdown and "cannot show" in markdown and "within run-to-run" in markdown
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["mt.gin", "tinylm.gin", "lm.gin"])
def test_recipe_gin_files_bind_existing_configurables(name):
    import gin

    import lowres.training.trainer  # noqa: F401  (registers what the files bind)

    gin.clear_config()
    gin.add_config_file_search_path(str(ROOT))
    try:
        gin.parse_config_files_and_bindings([str(ROOT / "experiments/translationese" / name)], [])
        config = gin.config_str()
        assert "ModelConfig.overrides" in config and "TrainConfig.report_mfu = False" in config
    finally:
        gin.clear_config()
