"""Import the repository's scripts (bench/, tools/), which are not a package, as modules for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(rel: str) -> ModuleType:
    """The script at ``rel`` (relative to the repository root), imported as a module named after its file, with
    its folder on ``sys.path`` as when it runs (bench scripts import ``common`` from there)."""
    folder = str((ROOT / rel).parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
