"""What the fuzz tests of specs share: the places of a JSON value, to mutate one."""

from typing import Any


def locations(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value, as a path of keys and indices (the root first)."""
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(locations(item, (*here, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(locations(item, (*here, index)))
    return found
