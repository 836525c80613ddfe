"""Automatic child names: the class name, suffixed ``_1.._n`` when a class repeats in one Chain.

An automatic name never equals another child's name. The rule, for the children of one Chain
whose names are not explicit, grouped by class name:

1. Explicit names are never changed and never reused: an automatic name skips them.
2. A class with a single member is named after the class (``Block``), unless an explicit name
   holds that name; that member then gets the first free suffix (``Block_1``).
3. A class with several members is numbered ``Block_1``, ``Block_2``... in child order, skipping
   every suffix already held: by an explicit name, or by the single member of a class literally
   named like one of these suffixed names (a class ``Block_2``, rule 2).

So ``Chain(Block(), Block(), Block_2())``, where ``Block_2`` is a class of that name, names its
children ``Block_1``, ``Block_3`` and ``Block_2``. A model without such classes or explicit
names gets the plain ``Block_1.. Block_n``.

>>> auto_names("Linear", 3, frozenset())
('Linear_1', 'Linear_2', 'Linear_3')
>>> auto_names("Linear", 2, frozenset({"Linear_1"}))
('Linear_2', 'Linear_3')
>>> auto_names("Block", 2, frozenset(), claimed=frozenset({"Block_2"}))
('Block_1', 'Block_3')
"""

from collections.abc import Collection, Iterable
from functools import lru_cache

import torch

from fluxion.tree.wrapping import node_class

STAND_IN = "_fluxion_named_as"
"""Key in a module's ``__dict__`` holding the class name it is auto-named under instead of its own.

An injected adapter sets it to its target's class name: it takes the target's place and name, and
surgery on its siblings keeps treating it as a member of the target's name group.
"""


def class_name(module: torch.nn.Module) -> str:
    """The class name automatic naming uses for ``module``: its own (the class it was built as, under
    any class a distributed wrapper swapped in), or the one it stands in for.

    >>> import fluxion.layers as fl
    >>> relu = fl.ReLU()
    >>> class_name(relu)
    'ReLU'
    >>> relu.__dict__[STAND_IN] = "GeLU"
    >>> class_name(relu)
    'GeLU'
    """
    return module.__dict__.get(STAND_IN) or node_class(module).__name__


def auto_names(base: str, count: int, explicit: Iterable[str], claimed: Collection[str] = ()) -> tuple[str, ...]:
    """The ``count`` automatic names of class ``base``, in child order, avoiding names held by others.

    ``explicit`` are the Chain's explicit names; ``claimed`` the names single members of other
    classes hold (see :func:`holds_suffix_like_name`). Only those that look like ``base`` or a
    suffixed ``base`` matter.

    >>> auto_names("ReLU", 1, frozenset())
    ('ReLU',)
    >>> auto_names("ReLU", 1, frozenset({"ReLU"}))
    ('ReLU_1',)
    """
    names = _plain_names(base, count)
    taken = [name for name in explicit if _collides(name, base)]
    if claimed:
        taken.extend(name for name in claimed if name != base and base_of(name) == base)
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


def holds_suffix_like_name(base: str, size: int, explicit: Collection[str]) -> bool:
    """Whether the class ``base``, with ``size`` automatically named members, holds a name that
    another class's suffixed names must skip: one member, named after its class (no explicit name
    holds that name), and the name looks suffixed (``Block_2``, which the class ``Block`` skips).

    >>> holds_suffix_like_name("Block_2", 1, set()), holds_suffix_like_name("Block", 1, set())
    (True, False)
    >>> holds_suffix_like_name("Block_2", 2, set()), holds_suffix_like_name("Block_2", 1, {"Block_2"})
    (False, False)
    """
    return size == 1 and base not in explicit and base_of(base) != base


def ranks_of(names: tuple[str, ...]) -> dict[str, int]:
    """Each automatic name's position in its group.

    >>> ranks_of(("Linear_1", "Linear_2"))
    {'Linear_1': 0, 'Linear_2': 1}
    """
    if names and names is _plain_names(base_of(names[0]), len(names)):
        return _plain_ranks(base_of(names[0]), len(names))
    return {name: rank for rank, name in enumerate(names)}


@lru_cache(maxsize=4096)
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
