"""Errors raised by the tree: bad access, bad surgery and failing forward calls.

>>> import fluxion.layers as fl
>>> try:
...     fl.Chain(fl.ReLU())["Linear"]
... except fl.ChildNotFoundError as error:
...     print(error)
Chain has no child 'Linear'; its children are: ReLU
"""

from fluxion.errors import FluxionError


class TreeError(FluxionError, ValueError):
    """Bad use of the tree: a node that already has a parent, a name with a dot, a duplicate name.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Chain(**{"a.b": fl.ReLU()})
    ... except fl.TreeError as error:
    ...     print(error)
    Chain: child name 'a.b' must not contain a dot (dots separate the parts of an address)
    """


class ChildNotFoundError(TreeError, KeyError):
    """A name or address that names no node; the message lists the valid names.

    >>> import fluxion.layers as fl
    >>> isinstance(fl.ChildNotFoundError("x"), KeyError)
    True
    """

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ChildIndexError(TreeError, IndexError):
    """An integer index outside a Chain's children.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Chain(fl.ReLU())[3]
    ... except IndexError as error:
    ...     print(error)
    Chain: index 3 is out of range for 1 child (valid: -1..0)
    """


class ChainError(FluxionError, RuntimeError):
    """A forward call failed inside a Chain.

    The message names the failing node's address, draws the tree around it and summarises the
    inputs it received; the original exception is chained as ``__cause__``. ``address`` and
    ``node`` hold the failing node for programmatic use.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 4), fl.Linear(8, 2))
    >>> try:
    ...     model(torch.zeros(1, 4))
    ... except fl.ChainError as error:
    ...     print(error.address)
    Linear_2
    """

    def __init__(self, message: str, *, address: str, node: object) -> None:
        super().__init__(message)
        self.address = address
        self.node = node


class ContextError(FluxionError, KeyError):
    """A context value was read before anything set it.

    >>> import fluxion.layers as fl
    >>> isinstance(fl.ContextError("x"), KeyError)
    True
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LayerError(FluxionError, ValueError):
    """A layer built with arguments it cannot work with.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Slicing(dim=1, step=0)
    ... except fl.LayerError as error:
    ...     print(error)
    Slicing: step must be at least 1, got 0
    """
