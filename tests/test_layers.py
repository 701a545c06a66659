"""The layers of the library and the one direction imports may point: down.

Every `import` and `from ... import` in lowres/ (also inside functions, and under TYPE_CHECKING) is
read with `ast` and checked against the order below; the README states the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "lowres"

# Bottom to top. Units on the same floor are independent of each other.
FLOORS: list[tuple[str, ...]] = [
    ("errors",),
    ("files", "config_fields", "gin_files"),
    ("figures", "text_metrics", "run_dir"),
    ("data", "models"),
    ("checkpoints",),
    ("interop",),
    ("inference", "training"),
    ("evaluation", "scaling"),
    ("jobs", "translationese"),
    ("sweeps",),
    ("bench",),
    ("cli",),
]
# Inside lowres/data, the wings in their own order (languages and config are the wings' ground floor).
DATA_FLOORS: list[tuple[str, ...]] = [
    ("languages", "config"),
    ("text",),
    ("mixing",),
    ("vocab",),
    ("cache",),
    ("tasks",),
    ("streams",),
]


def _floor(name: str, floors) -> int:
    for index, units in enumerate(floors):
        if name in units:
            return index
    raise AssertionError(f"{name!r} is on no floor of {floors}: add it to tests/test_layers.py and the README")


def _unit(module: str) -> str:
    """lowres.data.text.readers -> 'data'; lowres.run_dir -> 'run_dir'."""
    return module.split(".")[1]


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "data" else None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            # `from lowres import cli` names a unit too
            if base == "lowres":
                found += [(node.lineno, f"lowres.{alias.name}") for alias in node.names]
    return found


def _library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_every_library_unit_is_on_a_floor():
    units = {_unit(_module_name(p)) for p in _library_files() if _module_name(p) != "lowres"}
    for unit in units:
        _floor(unit, FLOORS)
    wings = {_wing(_module_name(p)) for p in _library_files() if _wing(_module_name(p))}
    for wing in wings:
        _floor(wing, DATA_FLOORS)


def test_imports_point_down():
    upward = []
    for path in _library_files():
        here = _module_name(path)
        if here == "lowres":
            continue
        unit = _unit(here)
        for line, target in _imports(path):
            if target == "tasks" or target.startswith("tasks."):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports the repo-root tasks package ({target})")
                continue
            if not target.startswith("lowres.") or _unit(target) == unit:
                if unit == "data" and target.startswith("lowres.data.") and _wing(here) and _wing(target):
                    if _floor(_wing(target), DATA_FLOORS) > _floor(_wing(here), DATA_FLOORS) or (
                        _wing(target) != _wing(here)
                        and _floor(_wing(target), DATA_FLOORS) == _floor(_wing(here), DATA_FLOORS)
                    ):
                        upward.append(f"{path.relative_to(ROOT)}:{line} data/{_wing(here)} imports {target}")
                continue
            if _floor(_unit(target), FLOORS) >= _floor(unit, FLOORS):
                upward.append(f"{path.relative_to(ROOT)}:{line} {unit} imports {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    source = tmp_path / "lowres" / "data" / "text" / "example.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from lowres.training import trainer\n\nfrom ..streams import pipeline\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        imports = _imports(source)
    finally:
        ROOT = saved
    assert (2, "lowres.training") in imports and (4, "lowres.data.streams") in imports


def test_only_lowres_is_installed_as_a_top_level_package():
    import importlib.metadata
    import tomllib

    import setuptools

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = setuptools.find_packages(str(ROOT), include=include)
    assert "lowres" in packages and {p.split(".")[0] for p in packages} == {"lowres"}, packages
    top_level = importlib.metadata.distribution("lowres").read_text("top_level.txt")
    if top_level is not None:  # the installed distribution (pip install -e .) says the same
        assert top_level.split() == ["lowres"], top_level
