"""Saving matplotlib figures as PNG files atomically: readers see the old file or the complete new one."""

from __future__ import annotations

import io
import os
from pathlib import Path

from lowres.files import write_atomic


def save_png(figure, path: str | os.PathLike, dpi: int = 100, **savefig_kwargs) -> Path:
    """Writes `figure` to `path` atomically (parents created), closes it; returns the path."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, **savefig_kwargs)
    plt.close(figure)
    return write_atomic(path, buffer.getvalue())
