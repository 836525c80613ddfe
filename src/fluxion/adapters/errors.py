"""The error family of ``fluxion.adapters``.

>>> import fluxion
>>> from fluxion.adapters import AdapterError
>>> issubclass(AdapterError, fluxion.FluxionError)
True
"""

from fluxion.errors import FluxionError


class AdapterError(FluxionError, ValueError):
    """Bad use of an adapter: injecting one twice, ejecting one that is not injected, a target
    selection that matches nothing, LoRA weights for addresses the model does not have.

    Adapter operations check everything before they change anything, so when this is raised the
    model is exactly as it was.

    >>> import fluxion.layers as fl
    >>> from fluxion.adapters import Adapter, AdapterError
    >>> try:
    ...     Adapter(fl.Linear(2, 2)).eject()
    ... except AdapterError as error:
    ...     print(error)
    Adapter on Linear is not injected; there is nothing to eject
    """
