"""The repository's `tasks/` registration modules, and what the lowres package may import.

`tasks/builtin.py` registers the built-in corpus for plain seqio users; the library itself never
imports `tasks`, and lowres/data imports only leftward along its wings.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOWRES = REPO / "lowres"
# Left to right: a module may import from its own wing or from wings to its left.
WINGS = {"languages": 0, "config": 0, "text": 1, "mixing": 2, "vocab": 3, "tasks": 4, "streams": 5}
NOT_FROM_DATA = ("lowres.models", "lowres.training", "lowres.inference", "lowres.evaluation", "lowres.bench",
                 "lowres.cli", "lowres.checkpoints", "lowres.translationese", "lowres.jobs")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env})


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included; `from a import b` gives a and a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def test_tasks_builtin_registers_the_builtin_corpus_for_plain_seqio(corpus, cache_dir):
    code = (
        "import json, seqio, tasks.builtin\n"
        "print(json.dumps({'mixtures': sorted(seqio.MixtureRegistry.names()), 'tasks': sorted(seqio.TaskRegistry.names()),"
        " 'module': tasks.builtin.__file__, 'returned': list(tasks.builtin.MIXTURES)}))\n"
    )
    result = _run(code, LOWRES_CACHE_DIR=str(cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(seen["module"]) == REPO / "tasks" / "builtin.py"
    from lowres.data.tasks.objectives import OBJECTIVES

    expected = {f"builtin.{objective}" for objective in OBJECTIVES} | {"builtin.translate"}
    assert expected <= set(seen["mixtures"]) and set(seen["returned"]) == expected
    assert {"builtin.pan_Guru.span_3_0p15_nlu", "builtin.eng_Latn_to_pan_Guru.translate",
            "builtin.pan_Guru_to_eng_Latn.translate"} <= set(seen["tasks"])
    # the default vocabulary is trained once and cached where the README says
    assert (cache_dir / "sample-vocab" / "vocab" / "spm.model").is_file()


def test_lowres_never_imports_the_tasks_folder():
    offenders = [f"{path.relative_to(REPO)}:{line} imports {name}"
                 for path in sorted(LOWRES.rglob("*.py")) for line, name in _imports(path)
                 if name == "tasks" or name.startswith("tasks.")]
    assert not offenders, offenders
    # ... and at run time: importing the library's main modules (from the repository root, where
    # `tasks` is importable) loads no module of it.
    modules = sorted({_module(p) for p in (LOWRES / "data").rglob("*.py")}
                     | {"lowres.training.trainer", "lowres.evaluation.report", "lowres.evaluation.task_documents"})
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'tasks' or m.startswith('tasks.'))))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_data_wings_import_only_leftward():
    """languages, config < text < mixing < vocab < tasks < streams; nothing above lowres.data, nor `tasks`."""
    offenders = []
    for path in sorted((LOWRES / "data").rglob("*.py")):
        me = _module(path).split(".")
        mine = WINGS.get(me[2]) if len(me) > 2 else None
        for line, name in _imports(path):
            parts = name.split(".")
            theirs = WINGS.get(parts[2]) if parts[:2] == ["lowres", "data"] and len(parts) > 2 else None
            if name.startswith(NOT_FROM_DATA) or name == "tasks" or name.startswith("tasks."):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {name}")
            elif mine is not None and theirs is not None and theirs > mine:
                offenders.append(f"{path.relative_to(REPO)}:{line} ({me[2]}) imports {name} ({parts[2]})")
    assert not offenders, "\n".join(dict.fromkeys(offenders))


def test_text_wing_registers_nothing_and_uses_no_metric():
    for path in sorted((LOWRES / "data" / "text").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert "TaskRegistry" not in source and "MixtureRegistry" not in source, path
        assert not any(name.startswith("lowres.text_metrics") for _, name in _imports(path)), path


def test_data_writes_files_atomically_through_lowres_files_only():
    """Atomic writes go through lowres.files.write_atomic/write_json; no module keeps a copy of its own."""
    offenders = []
    for path in sorted((LOWRES / "data").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(REPO)}: {call}" for call in
                      ("os.replace", "os.rename", "mkstemp", "NamedTemporaryFile") if call in source]
        offenders += [f"{path.relative_to(REPO)}: def {node.name}" for node in ast.walk(ast.parse(source))
                      if isinstance(node, ast.FunctionDef) and "write_atomic" in node.name]
    assert not offenders, f"use lowres.files.write_atomic / write_json: {offenders}"
