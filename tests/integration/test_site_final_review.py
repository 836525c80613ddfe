"""The API reference's member filter (mkdocs.yml): private names and a module's machinery are left
out, but dunders whose docstrings are public API stay (``Chain.__getitem__``: indexing by name,
address and slice; ``KeyMapping.__call__``: how a key is mapped)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import fluxion.layers as fl
from fluxion.weights import KeyMapping

ROOT = Path(__file__).resolve().parents[2]


def _filters() -> list[str]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            options = plugin["mkdocstrings"]["handlers"]["python"]["options"]
            return list(options.get("filters", ["!^_[^_]"]))  # mkdocstrings' default
    raise AssertionError("no mkdocstrings plugin in mkdocs.yml")


def _kept(name: str, filters: list[str]) -> bool:
    """mkdocstrings-python's rule: the last filter matching decides; none matching keeps a name
    unless every filter is an inclusion."""
    keep: bool | None = None
    for item in filters:
        exclude = item.startswith("!")
        if re.search(item.removeprefix("!"), name):
            keep = not exclude
    return keep if keep is not None else any(item.startswith("!") for item in filters)


def test_documented_dunders_of_the_public_api_are_in_the_reference() -> None:
    documented = {
        "__getitem__": fl.Chain.__getitem__,
        "__setitem__": fl.Chain.__setitem__,
        "__delitem__": fl.Chain.__delitem__,
        "__getattr__": fl.Chain.__getattr__,
        "__call__": KeyMapping.__call__,
    }
    assert all(method.__doc__ for method in documented.values())  # each says what it does, with an example
    filters = _filters()
    assert [name for name in documented if not _kept(name, filters)] == []
