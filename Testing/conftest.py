"""Shared pytest fixtures. The pure packages are importable without installation through
``pythonpath`` below (also set in pyproject's pytest config when installed)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "LuDosimetry", ROOT / "LuResponse"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
