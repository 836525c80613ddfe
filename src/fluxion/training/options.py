"""What the init, optimizer and loss specs share: a ``type`` naming a torch class or function, keyword
arguments checked against its signature, and errors that say where and suggest a spelling.

>>> kind, arguments = split_type({"type": "Adam", "lr": 0.01}, "optimizer")
>>> kind, arguments
('Adam', {'lr': 0.01})
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from fluxion.errors import TrainingError

Place = tuple[str | int, ...]
"""Where in a spec: its keys and list indices from the spec's top (``("groups", 1, "params")``)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` with the closest of ``choices`` (case ignored), or ``""`` when none is close.

    >>> did_you_mean("MSELos", ["MSELoss", "L1Loss"])
    " (did you mean 'MSELoss'?)"
    >>> did_you_mean("zzz", ["MSELoss"])
    ''
    """
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def close_addresses(glob: str, addresses: Iterable[str]) -> str:
    """What to show after "matches no parameter": the addresses the glob matches ignoring case, or
    the closest addresses, or the first ones.

    >>> close_addresses("Encoder.*", ["encoder.0.weight", "head.weight"])
    " (close: 'encoder.0.weight')"
    """
    listed = list(addresses)
    folded = [address for address in listed if fnmatch.fnmatchcase(address.lower(), glob.lower())]
    close = folded[:3] or difflib.get_close_matches(glob, listed, n=3, cutoff=0.4)
    if close:
        return f" (close: {', '.join(map(repr, close))})"
    return f"; the parameters are: {', '.join(listed[:8])}{'...' if len(listed) > 8 else ''}"


def split_type(spec: Mapping[str, Any], what: str, place: Place = ()) -> tuple[Any, dict[str, Any]]:
    """The ``type`` of a ``{"type": ..., **arguments}`` spec and a copy of its other keys.

    >>> split_type({"type": "zeros_"}, "initializer")
    ('zeros_', {})
    """
    given = cast(object, spec)
    article = "an" if what[0] in "aeiou" else "a"
    if not isinstance(given, Mapping):
        raise TrainingError(f'{article} {what} spec is an object with a "type", got {type(given).__name__}', path=place)
    if "type" not in spec:
        raise TrainingError(f'{article} {what} spec names its class in "type"; it has only {sorted(spec)}', path=place)
    arguments = {str(key): value for key, value in spec.items() if key != "type"}
    return spec["type"], arguments


def check_arguments(
    arguments: Mapping[str, Any],
    function: Callable[..., Any],
    what: str,
    place: Place = (),
    skip: Sequence[str] = (),
) -> None:
    """Refuse a keyword ``function`` does not take (suggesting the closest) and a number written as
    a string (YAML 1.1 reads ``1e-3`` as one) where the default is a number.

    >>> check_arguments({"lr": 0.1}, lambda params, lr=0.001: None, "Adam")
    >>> try:
    ...     check_arguments({"lr": "1e-3"}, lambda params, lr=0.001: None, "Adam", ("optimizer",))
    ... except TrainingError as error:
    ...     print(error.path, error)
    ('optimizer', 'lr') Adam: lr takes a number, got the string '1e-3' (YAML 1.1 reads 1e-3 as a string: write 1.0e-3)
    """
    parameters = {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name not in skip and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    takes_any = any(
        parameter.kind is parameter.VAR_KEYWORD for parameter in inspect.signature(function).parameters.values()
    )
    for name, value in arguments.items():
        if name not in parameters:
            if takes_any:
                continue
            known = ", ".join(parameters) or "none"
            raise TrainingError(
                f"{what} takes no argument {name!r}{did_you_mean(name, parameters)}; it takes: {known}",
                path=(*place, name),
            )
        default = parameters[name].default
        if isinstance(value, str) and isinstance(default, int | float) and not isinstance(default, bool):
            try:
                float(value)
            except ValueError:
                raise TrainingError(f"{what}: {name} takes a number, got {value!r}", path=(*place, name)) from None
            hint = f" (YAML 1.1 reads {value} as a string: write {_with_dot(value)})" if "e" in value.lower() else ""
            raise TrainingError(f"{what}: {name} takes a number, got the string {value!r}{hint}", path=(*place, name))


def _with_dot(number: str) -> str:
    mantissa, _, exponent = number.lower().partition("e")
    return number if "." in mantissa else f"{mantissa}.0e{exponent}"
