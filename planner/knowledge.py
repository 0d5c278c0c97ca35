"""Find and read the TOML tables in knowledge/ (and the templates/ folder).

In a source checkout or an editable install they sit beside planner/; in a wheel they are
installed as planner/_knowledge and planner/_templates (see pyproject.toml)."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _data_dir(checkout_name: str, wheel_name: str) -> Path:
    for candidate in (_HERE.parent / checkout_name, _HERE / wheel_name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ftplan's {checkout_name}/ folder is missing; reinstall ftplan")


def knowledge_dir() -> Path:
    return _data_dir("knowledge", "_knowledge")


def templates_dir() -> Path:
    return _data_dir("templates", "_templates")


@functools.cache
def table(name: str) -> dict:
    """The parsed knowledge/<name>.toml (cached: each file is read once per process)."""
    with open(knowledge_dir() / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


def rows(name: str, key: str) -> list[dict]:
    """The array of tables `[[key]]` in knowledge/<name>.toml."""
    return table(name).get(key, [])
