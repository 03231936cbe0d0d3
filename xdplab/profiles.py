"""Driver clock profiles from ``data/drivers.json`` (each value with its source)."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

_REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def data_path(name: str) -> Path:
    """A file of the project's ``data/`` folder (the repository's, or the wheel's copy)."""
    candidate = _REPO_DATA / name
    if candidate.exists():
        return candidate
    packaged = resources.files("xdplab") / "_data" / name
    return Path(str(packaged))


@lru_cache(maxsize=None)   # a pure memo of a read-only file
def driver_profiles() -> dict[str, Any]:
    return json.loads(data_path("drivers.json").read_text())


def value(driver: str, key: str) -> Any:
    """``value("mlx4", "hca_core_clock_mhz")`` -> 427."""
    entry = driver_profiles()[driver][key]
    return entry["value"] if isinstance(entry, dict) else entry
