"""Constructor arguments between JSON and Python: checked against the constructor's signature and
annotations on the way in, written back as JSON on the way out.

>>> import fluxion.layers as fl
>>> arguments_in(fl.Conv2d, {"out_channels": 8, "kernel_size": [3, 3]}, ["children", 0])
{'out_channels': 8, 'kernel_size': (3, 3)}
>>> arguments_in(fl.Linear, {"out_feature": 8}, ["children", 0])
Traceback (most recent call last):
...
fluxion.errors.SpecError: children[0].out_feature: Linear has no argument 'out_feature' (did you mean \
out_features?); its signature: Linear(in_features: int | None = None, out_features: int | None = None, \
bias: bool = True, dtype: torch.dtype | None = None)
"""

from __future__ import annotations

import difflib
import enum
import functools
import inspect
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, cast, get_args, get_origin

import torch

from fluxion.errors import SpecError
from fluxion.spec.messages import json_path
from fluxion.tree.module import CHILD

Path = list[str | int]
BUILD_OPTIONS = ("device",)
"""Constructor arguments that say where to build, not what: never in a spec (``load(device=...)``)."""


def arguments_in(cls: type, given: Mapping[str, Any], path: Path, *, children: int = 0) -> dict[str, Any]:
    """``given`` (JSON values by argument name) checked and converted for ``cls``'s constructor.

    Unknown names (with the closest ones and the signature), values of the wrong type and missing
    required arguments are a SpecError at ``path``. ``children`` first positional parameters are
    given by the node's children (``Matmul(input, other)``).

    >>> import fluxion.layers as fl
    >>> arguments_in(fl.LayerNorm, {"normalized_shape": 8, "eps": 1}, [])
    {'normalized_shape': 8, 'eps': 1.0}
    """
    signature, hints = _signature(cls)
    parameters = signature.parameters
    converted: dict[str, Any] = {}
    for name, value in given.items():
        parameter = parameters.get(name)
        if parameter is None or name in BUILD_OPTIONS or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            candidates = [key for key in parameters if key not in BUILD_OPTIONS]
            close = difflib.get_close_matches(name, candidates, n=1) if name not in BUILD_OPTIONS else []
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SpecError(
                f"{cls.__name__} has no argument {name!r}{hint}; its signature: {describe_signature(cls)}",
                path=json_path([*path, name]),
            )
        hint = hints.get(name, torch.dtype | None if name == "dtype" else Any)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            if not isinstance(value, list):
                raise SpecError(
                    f"{cls.__name__} takes {name} as a list (*{name}), got {_shown(value)}",
                    path=json_path([*path, name]),
                )
            items = cast(list[Any], value)
            converted[name] = tuple(convert(item, hint, [*path, name, i]) for i, item in enumerate(items))
        else:
            converted[name] = convert(value, hint, [*path, name])
    for position, (name, parameter) in enumerate(parameters.items()):
        if position < children:
            continue
        required = parameter.default is inspect.Parameter.empty and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        if required and name not in converted:
            raise SpecError(
                f"{cls.__name__} needs argument {name!r}; its signature: {describe_signature(cls)}",
                path=json_path(path),
            )
    return converted


def call(cls: type, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for the constructor: a ``*name`` argument goes by position.

    >>> import fluxion.layers as fl
    >>> call(fl.Reshape, {"shape": (2, 3)})
    ((2, 3), {})
    """
    signature, _ = _signature(cls)
    positional: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    for name, value in arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
            positional = tuple(value)
        else:
            keywords[name] = value
    if positional:
        # what comes before *name must then be given by position too
        before = [
            parameter.name
            for parameter in signature.parameters.values()
            if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        positional = (*(keywords.pop(name) for name in before if name in keywords), *positional)
    return positional, keywords


def arguments_out(cls: type, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor call ``cls(*args, **kwargs)`` as JSON values by name, defaults left out.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> arguments_out(fl.Conv2d, (3, 8, (3, 3)), {"padding": 1, "dtype": torch.float16})
    {'in_channels': 3, 'out_channels': 8, 'kernel_size': [3, 3], 'padding': 1, 'dtype': 'float16'}
    """
    signature, _ = _signature(cls)
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError as error:
        raise SpecError(f"{cls.__name__} was constructed with arguments it does not take: {error}") from None
    written: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        parameter = signature.parameters[name]
        if _is_child(value):  # a module given to the constructor: written as a child, not an argument
            continue
        if name in BUILD_OPTIONS or (
            parameter.default is not inspect.Parameter.empty and _same(value, parameter.default)
        ):
            continue
        if name.startswith("_"):  # a private way in (Embedding.from_pretrained's weights): data, not architecture
            continue
        written[name] = to_json(value, f"{cls.__name__}.{name}")
    return written


def _is_child(value: Any) -> bool:
    if value is CHILD:
        return True
    if isinstance(value, dict):  # named children (**named)
        value = tuple(cast(dict[str, Any], value).values())
    if not isinstance(value, tuple):
        return False
    items = cast(tuple[Any, ...], value)
    return bool(items) and all(item is CHILD for item in items)


def to_json(value: Any, where: str) -> Any:
    """A constructor argument as a JSON value (tuples as lists, dtypes by name).

    >>> import torch
    >>> to_json((1, (2, 3)), "x"), to_json(torch.bfloat16, "dtype")
    ([1, [2, 3]], 'bfloat16')
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{where} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, enum.Enum):
        return to_json(cast(Any, value).value, where)
    if isinstance(value, list | tuple):
        return [to_json(item, f"{where}[{i}]") for i, item in enumerate(cast(Sequence[Any], value))]
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        return {str(key): to_json(item, f"{where}.{key}") for key, item in items}
    raise SpecError(f"{where} is a {type(value).__name__}, which a spec cannot hold")


def convert(value: Any, hint: Any, path: Path) -> Any:
    """A JSON value checked against a type annotation and converted (lists to tuples, dtype names).

    >>> convert([1, 2], tuple[int, int], []), convert(3, float, [])
    ((1, 2), 3.0)
    >>> convert("3", int | None, ["kernel_size"])
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: kernel_size: expected an int or null, got "3"
    """
    result = _convert(value, hint)
    if result is _MISMATCH:
        raise SpecError(f"expected {describe(hint)}, got {_shown(value)}", path=json_path(path))
    return result


def describe(hint: Any) -> str:
    """A type annotation in words.

    >>> describe(int | tuple[int, int] | None)
    'an int, a list of 2 ints or null'
    """
    origin, arguments = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        words = [describe(argument) for argument in arguments]
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(option) for option in arguments)
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if (len(arguments) == 2 and arguments[1] is Ellipsis) or origin is not tuple:
            item = describe(arguments[0]) if arguments else "a value"
            return f"a list of {_plural(item)}"
        if len(set(arguments)) == 1:
            return f"a list of {len(arguments)} {_plural(describe(arguments[0]))}"
        return f"a list of {len(arguments)} values ({', '.join(describe(argument) for argument in arguments)})"
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "an int",
        float: "a number",
        str: "a string",
        torch.dtype: 'a dtype name (such as "float32")',
    }
    if hint in names:
        return names[hint]
    if hint is Any:
        return "a value"
    return f"a {getattr(hint, '__name__', str(hint))}"


def describe_signature(cls: type) -> str:
    """The constructor's signature as a spec sees it (no ``self``, no device).

    >>> import fluxion.layers as fl
    >>> describe_signature(fl.Dropout)
    'Dropout(p: float = 0.5, inplace: bool = False)'
    """
    signature, hints = _signature(cls)
    parts: list[str] = []
    for name, parameter in signature.parameters.items():
        if name in BUILD_OPTIONS or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        text = ("*" if parameter.kind is inspect.Parameter.VAR_POSITIONAL else "") + name
        if name in hints:
            text += f": {_annotation_text(hints[name])}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        parts.append(text)
    return f"{cls.__name__}({', '.join(parts)})"


_MISMATCH: Any = object()


def _convert(value: Any, hint: Any) -> Any:
    origin, arguments = get_origin(hint), get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return value
    if origin in (Union, types.UnionType):
        for argument in arguments:
            result = _convert(value, argument)
            if result is not _MISMATCH:
                return result
        return _MISMATCH
    if origin is Literal:
        return value if any(value == option and type(value) is type(option) for option in arguments) else _MISMATCH
    if hint is type(None) or hint is None:
        return None if value is None else _MISMATCH
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint is float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _MISMATCH
    if hint is str:
        return value if isinstance(value, str) else _MISMATCH
    if hint is torch.dtype:
        found = getattr(torch, value, None) if isinstance(value, str) else None
        return found if isinstance(found, torch.dtype) else _MISMATCH
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, list):
            return _MISMATCH
        items = cast(list[Any], value)
        if origin is tuple and arguments and not (len(arguments) == 2 and arguments[1] is Ellipsis):
            if len(items) != len(arguments):
                return _MISMATCH
            converted = [_convert(item, argument) for item, argument in zip(items, arguments, strict=True)]
        else:
            item_hint = arguments[0] if arguments else Any
            converted = [_convert(item, item_hint) for item in items]
        if any(item is _MISMATCH for item in converted):
            return _MISMATCH
        return converted if origin is list else tuple(converted)
    if isinstance(hint, type) and issubclass(hint, torch.nn.Module):
        return _MISMATCH  # modules are children, not arguments
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return cast(Any, value) if isinstance(value, dict) else _MISMATCH
    if hint in (torch.device, torch.Tensor) or (origin is not None and callable(cast(object, hint))):
        return _MISMATCH
    return value  # an annotation this module does not know: let the constructor check


@functools.cache
def _signature(cls: type) -> tuple[inspect.Signature, dict[str, Any]]:
    signature = inspect.signature(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations that do not resolve: no type checks, the constructor checks
        hints = {}
    hints.pop("return", None)
    return signature, hints


def _annotation_text(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("torch.", "torch.") if not isinstance(hint, type) else hint.__name__


def _plural(words: str) -> str:
    article = words.split(" ", 1)
    if len(article) == 2 and article[0] in ("a", "an"):
        noun = article[1]
        return noun if noun.endswith("s") or " " in noun else f"{noun}s"
    return words


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(type(value) is type(default) and value == default)
    except Exception:
        return False
