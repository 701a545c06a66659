"""Saving matplotlib figures as PNG files atomically: readers see the old file or the complete new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def save_png(figure, path: str | os.PathLike, dpi: int = 100, **savefig_kwargs) -> Path:
    """Writes `figure` to `path` (parents created) through a temporary file, closes it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, **savefig_kwargs)
    plt.close(figure)
    os.replace(tmp.name, path)
    return path
