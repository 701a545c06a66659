"""The README's layout section matches the tree: every path it names exists, and every unit of the
library (each subpackage and top-level module of lowres/) is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Layout\n")
    return text[start : text.index("\n## ", start + 1)]


def test_every_path_in_the_layout_exists():
    named = set(re.findall(r"`((?:lowres|tasks|gin_configs|experiments|benchmarks|tests)/[^`]*)`", _layout_section()))
    assert named, "the layout section names no paths"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"README layout names paths that do not exist: {missing}"


def test_every_library_unit_is_in_the_layout():
    section = _layout_section()
    units = [p for p in sorted((ROOT / "lowres").iterdir())
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")]
    unnamed = [p.name for p in units if f"`lowres/{p.name}{'/' if p.is_dir() else ''}`" not in section]
    assert not unnamed, f"README layout does not name {unnamed}"


def test_every_data_wing_is_in_the_layout():
    section = _layout_section()
    wings = [p.name for p in sorted((ROOT / "lowres" / "data").iterdir()) if (p / "__init__.py").exists()]
    assert wings and all(f"`{wing}/`" in section for wing in wings), wings
