"""Where things are in the repository (tests run from any working directory)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"
CHART = REPO / "charts" / "spectra"
