"""Errors and warnings of ``fluxion.weights``.

>>> import fluxion
>>> from fluxion.weights import WeightsError
>>> issubclass(WeightsError, fluxion.FluxionError)
True
"""

from fluxion.errors import FluxionError


class WeightsError(FluxionError, ValueError):
    """A checkpoint that cannot be read, mapped or loaded; the message says which file and which keys.

    A failed load raises this before anything is copied, so the model is left exactly as it was.
    The problems are also available to programs as ``missing``, ``unexpected`` and ``mismatched``
    (tuples of keys; empty when the error is about something else, such as an unreadable file).

    >>> error = WeightsError("model.safetensors: 1 missing key", missing=("head.bias",))
    >>> error.missing
    ('head.bias',)
    """

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


class ConversionError(WeightsError):
    """``convert`` could not pair two models' weights, or the converted model computes something else.

    The message names the leaves that disagree: by address in the source and in the target.

    >>> issubclass(ConversionError, WeightsError)
    True
    """


class WeightsWarning(UserWarning):
    """Something a load did that works but deserves attention (a pickled file, tensors left on meta).

    >>> issubclass(WeightsWarning, UserWarning)
    True
    """


class PickleCheckpointWarning(WeightsWarning):
    """A ``.pt``/``.pth``/``.bin`` checkpoint was read (safely, with ``weights_only=True``).

    Such files are pickles; safetensors files are faster to load, memory-mapped and cannot run code.

    >>> issubclass(PickleCheckpointWarning, WeightsWarning)
    True
    """
