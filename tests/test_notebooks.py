"""The notebooks in experiments/notebooks/: each .ipynb matches its jupytext twin (.py, the file to review
and edit), is committed without outputs, and runs top to bottom on CPU with its parameters set to tiny
sizes (papermill's convention: a cell tagged `parameters`, overridden by a cell injected after it)."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "experiments" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), list(c.metadata.get("tags", []))) for c in notebook.cells]


def test_there_are_notebooks_and_each_has_a_text_twin():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "research"}
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.py")) == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_text_twin_are_in_sync_and_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    twin = jupytext.read(path.with_suffix(".py"))
    assert _cells(notebook) == _cells(twin), f"{path.name} differs from its .py: run `jupytext --sync {path.with_suffix('.py')}`"
    assert notebook.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert notebook.metadata.get("accelerator") == twin.metadata.get("accelerator")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} is committed with outputs"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "one code cell must be tagged `parameters`"
    assert "needs" in notebook.cells[0].source.lower(), "the first cell says what the notebook needs"


def execute(path: Path, workdir: Path, parameters: dict, timeout: int = 600):
    """Runs the notebook in `workdir` with `parameters` set after its parameters cell; returns it executed.
    A cell that raises fails the call (nbclient's CellExecutionError names the cell)."""
    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    injected = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def _outputs(notebook, kind: str) -> list:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch, cache_dir):
    # The kernel inherits the environment: one CPU device, no accelerator probing, and the session's
    # corpus cache (LOWRES_CACHE_DIR, set by the cache_dir fixture).
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("XLA_FLAGS", raising=False)


@pytest.mark.slow
def test_quickstart_notebook_trains_evaluates_translates_and_exports_on_cpu(tmp_path):
    notebook = execute(NOTEBOOK_DIR / "quickstart.ipynb", tmp_path,
                       {"PROFILE": "accelerator", "NUM_STEPS": 6, "LANGUAGES": ["eng", "pan", "yor", "cym"]})
    text = _text(notebook)
    # Asked for an accelerator on a CPU-only machine: a message and the CPU configuration, not an error.
    assert "No TPU or GPU is visible to JAX" in text
    run = tmp_path / "runs" / "notebook_quickstart"
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in losses) == 6
    # The live plot drew at least once, and the evaluation's bar chart is shown inline.
    assert len(_outputs(notebook, "image/png")) >= 2
    report = json.loads((run / "eval.json").read_text())
    assert sorted(report["languages"]) == ["cym_Latn", "eng_Latn", "pan_Guru", "yor_Latn"]
    assert all(r["bits_per_byte"] > 0 for r in report["languages"].values())
    assert text.count("French -> ") >= 3
    export = tmp_path / "runs" / "notebook_quickstart_hf"
    assert (export / "config.json").is_file() and (export / "model.safetensors").is_file()
    assert "transformers loads it as T5ForConditionalGeneration" in text


@pytest.mark.slow
def test_research_notebook_runs_a_sweep_compares_languages_and_fits_a_power_law(tmp_path):
    notebook = execute(NOTEBOOK_DIR / "research.ipynb", tmp_path,
                       {"WIDTHS": [8, 16, 24, 32], "SEEDS": [0], "NUM_STEPS": 4, "PARALLEL": 2})
    sweep = tmp_path / "runs" / "notebook_width_sweep"
    results = json.loads((sweep / "results.json").read_text())
    assert [r["state"] for r in results["runs"]] == ["done"] * 4
    sizes = [r["params"] for r in results["runs"]]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert all(r["bpb eng_Latn"] > 0 and r["bpb yor_Latn"] > 0 for r in results["runs"])
    text = _text(notebook)
    assert "4 of 4 runs done" in text
    assert "fit: L(x) = E + A * x^-alpha" in text and "95% interval" in text
    assert (sweep / "notebook_comparison.png").stat().st_size > 0 and (sweep / "notebook_fit.png").is_file()
    assert len(_outputs(notebook, "image/png")) == 2


@pytest.mark.slow
def test_quickstart_notebook_trains_on_the_users_own_text_and_generates(tmp_path):
    corpus = tmp_path / "drive"
    corpus.mkdir()
    words = {"eng": "the house by the river sang a song of water and light", "yor": "ile odo orin omi ati imole ni"}
    for lang, text in words.items():  # one document per line, as a user's upload would be
        tokens = text.split()
        lines = [" ".join(tokens[(i + j) % len(tokens)] for j in range(10)) for i in range(200)]
        (corpus / f"{lang}.txt").write_text("\n".join(lines) + "\n")
    notebook = execute(NOTEBOOK_DIR / "quickstart.ipynb", tmp_path, {
        "PROFILE": "cpu", "NUM_STEPS": 4, "DATA": f"text:{corpus}/{{lang}}.txt", "LANGUAGES": ["eng", "yor"],
        "RUN_DIR": "runs/mine"})  # fmt: skip
    text = _text(notebook)
    report = json.loads((tmp_path / "runs" / "mine" / "eval.json").read_text())
    assert sorted(report["languages"]) == ["eng_Latn", "yor_Latn"]
    assert "in-sample" in (tmp_path / "runs" / "mine" / "eval.md").read_text()  # no {split}: trained-on text
    assert "In the beginning ... " in text and "French -> " not in text  # continued in S2S mode: no pairs to translate
    assert "HF generate:" in text
