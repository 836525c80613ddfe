"""The root of fluxion's exception family.

Every part of fluxion raises a subclass of :class:`FluxionError`, so one ``except`` clause catches
anything fluxion reports about bad input, while the subclasses say which part complained.

>>> import fluxion
>>> issubclass(fluxion.layers.TreeError, fluxion.FluxionError)
True
"""


class FluxionError(Exception):
    """Base class of every error fluxion raises on purpose.

    >>> try:
    ...     raise FluxionError("something is off")
    ... except FluxionError as error:
    ...     print(error)
    something is off
    """
