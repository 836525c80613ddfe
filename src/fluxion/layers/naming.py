"""Automatic child names: the class name, suffixed ``_1.._n`` when a class repeats in one Chain.

Names an explicit child already holds are skipped, so an automatic name never collides with an
explicit one.

>>> auto_names("Linear", 3, frozenset())
('Linear_1', 'Linear_2', 'Linear_3')
>>> auto_names("Linear", 2, frozenset({"Linear_1"}))
('Linear_2', 'Linear_3')
"""

from collections.abc import Iterable
from functools import lru_cache

import torch

STAND_IN = "_fluxion_named_as"
"""Key in a module's ``__dict__`` holding the class name it is auto-named under instead of its own.

An injected adapter sets it to its target's class name: it takes the target's place and name, and
surgery on its siblings keeps treating it as a member of the target's name group.
"""


def class_name(module: torch.nn.Module) -> str:
    """The class name automatic naming uses for ``module``: its own, or the one it stands in for.

    >>> import fluxion.layers as fl
    >>> relu = fl.ReLU()
    >>> class_name(relu)
    'ReLU'
    >>> relu.__dict__[STAND_IN] = "GeLU"
    >>> class_name(relu)
    'GeLU'
    """
    return module.__dict__.get(STAND_IN) or type(module).__name__


def auto_names(base: str, count: int, explicit: Iterable[str]) -> tuple[str, ...]:
    """The ``count`` automatic names of class ``base``, in child order, avoiding ``explicit``.

    >>> auto_names("ReLU", 1, frozenset())
    ('ReLU',)
    >>> auto_names("ReLU", 1, frozenset({"ReLU"}))
    ('ReLU_1',)
    """
    names = _plain_names(base, count)
    taken = [name for name in explicit if _collides(name, base)]
    if not taken:
        return names
    blocked = set(taken)
    if count == 1 and base not in blocked:
        return names
    chosen: list[str] = []
    suffix = 1
    while len(chosen) < count:
        candidate = f"{base}_{suffix}"
        if candidate not in blocked:
            chosen.append(candidate)
        suffix += 1
    return tuple(chosen)


def ranks_of(names: tuple[str, ...]) -> dict[str, int]:
    """Each automatic name's position in its group.

    >>> ranks_of(("Linear_1", "Linear_2"))
    {'Linear_1': 0, 'Linear_2': 1}
    """
    if names and names is _plain_names(base_of(names[0]), len(names)):
        return _plain_ranks(base_of(names[0]), len(names))
    return {name: rank for rank, name in enumerate(names)}


def base_of(name: str) -> str:
    """The class name an automatic-looking name would belong to.

    >>> base_of("Linear_12"), base_of("Linear"), base_of("proj_out")
    ('Linear', 'Linear', 'proj_out')
    """
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def _collides(name: str, base: str) -> bool:
    return name == base or base_of(name) == base


@lru_cache(maxsize=1024)
def _plain_names(base: str, count: int) -> tuple[str, ...]:
    if count == 1:
        return (base,)
    return tuple(f"{base}_{i}" for i in range(1, count + 1))


@lru_cache(maxsize=1024)
def _plain_ranks(base: str, count: int) -> dict[str, int]:
    return {name: rank for rank, name in enumerate(_plain_names(base, count))}
