"""Initializers from specs: ``torch.nn.init`` by name, with the gain that fits the activation, applied
to a model's weight matrices or to the tensors address globs pick.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import training
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2))
>>> training.initialize(model, {"*.bias": "zeros_", "*.weight": {"type": "normal_", "std": 0.02}})
>>> torch.count_nonzero(model.Linear_1.bias).item()
0
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch

from fluxion.errors import TrainingError
from fluxion.training.options import Place, check_arguments, close_addresses, did_you_mean, split_type
from fluxion.tree.parameter_roles import named_weights

InitializerSpec = str | Mapping[str, Any]
"""One initializer: a ``torch.nn.init`` name (``"kaiming_uniform_"``) or ``{"type": name, **arguments}``
(``"activation"`` among them gives the gain)."""

InitSpec = InitializerSpec | Mapping[str, InitializerSpec]
"""An init spec: one initializer for the weight matrices, or initializers by address glob."""

INITIALIZERS: dict[str, Callable[..., Any]] = {
    name: getattr(torch.nn.init, name)
    for name in dir(torch.nn.init)
    if name.endswith("_") and not name.startswith("_") and callable(getattr(torch.nn.init, name))
}
"""The in-place initializers of ``torch.nn.init`` by name (``"xavier_uniform_"``, ``"zeros_"``...)."""

GAIN_NAMES = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "leakyrelu": "leaky_relu",
    "selu": "selu",
    "linear": "linear",
    "identity": "linear",
}
"""Activations by their spelling in lower case without underscores (``ReLU``, ``relu``, ``LeakyReLU``,
``leaky_relu``) -> the name ``torch.nn.init.calculate_gain`` knows them by."""

LEAKY_RELU_SLOPE = 0.01
"""``torch.nn.LeakyReLU``'s default negative slope: what kaiming's ``a`` is for a LeakyReLU activation."""


@dataclass(frozen=True)
class Initializer:
    """A ``torch.nn.init`` function with its arguments (the gain already derived), checked.

    >>> initializer = parse_initializer({"type": "xavier_uniform_"}, activation="Tanh")
    >>> initializer.name, initializer.arguments
    ('xavier_uniform_', {'gain': 1.6666666666666667})
    """

    name: str
    function: Callable[..., Any]
    arguments: dict[str, Any]
    place: Place = ()

    def fill(self, tensor: torch.Tensor) -> None:
        """Fill ``tensor`` in place, without recording gradients.

        >>> tensor = torch.ones(2, 2, requires_grad=True)
        >>> parse_initializer("zeros_").fill(tensor)
        >>> tensor.tolist()
        [[0.0, 0.0], [0.0, 0.0]]
        """
        with torch.no_grad():
            self.function(tensor, **self.arguments)

    def check(self, tensor: torch.Tensor, address: str) -> None:
        """Refuse a tensor this initializer cannot fill (a bias for xavier...), trying it on meta.

        >>> parse_initializer("xavier_uniform_").check(torch.zeros(3), "head.bias")
        Traceback (most recent call last):
        ...
        fluxion.errors.TrainingError: xavier_uniform_ cannot initialize 'head.bias' of shape (3,): ...
        """
        try:
            self.function(torch.empty(tensor.shape, dtype=tensor.dtype, device="meta"), **self.arguments)
        except (ValueError, TypeError, RuntimeError) as error:
            shape = f"({', '.join(map(str, tensor.shape))}{',' if tensor.dim() == 1 else ''})"
            raise TrainingError(
                f"{self.name} cannot initialize {address!r} of shape {shape}: {error}", path=self.place
            ) from None


def parse_initializer(spec: InitializerSpec, *, activation: str | None = None, place: Place = ()) -> Initializer:
    """The initializer a name or ``{"type": ..., **arguments}`` stands for, its arguments checked.

    An ``activation`` (the argument, or the spec's own ``"activation"`` key, which wins) gives the
    gain: xavier's and orthogonal's ``gain`` is ``calculate_gain`` of it, kaiming's ``nonlinearity``
    is it (and ``a`` is 0.01 for a LeakyReLU). Arguments the spec gives are never replaced.
    Activations torch has no gain for (GELU, SiLU...) leave the defaults.

    >>> parse_initializer("kaiming_normal_", activation="LeakyReLU").arguments
    {'nonlinearity': 'leaky_relu', 'a': 0.01}
    >>> parse_initializer({"type": "orthogonal_", "gain": 2.0}, activation="ReLU").arguments
    {'gain': 2.0}
    """
    activation_place = place
    if isinstance(spec, str):
        name, arguments = spec, {}
    else:
        name, arguments = split_type(spec, "initializer", place)
        if "activation" in arguments:
            activation = arguments.pop("activation")
            activation_place = (*place, "activation")
    if not isinstance(name, str):
        raise TrainingError(f"an initializer is named by a string, got {name!r}", path=place)
    function = INITIALIZERS.get(name) or INITIALIZERS.get(f"{name}_")
    if function is None:
        raise TrainingError(
            f"unknown initializer {name!r}{did_you_mean(name, INITIALIZERS)}; initializers are torch.nn.init's: "
            + ", ".join(INITIALIZERS),
            path=place if isinstance(spec, str) else (*place, "type"),
        )
    name = function.__name__
    check_arguments(arguments, function, name, place, skip=("tensor",))
    if activation is not None:
        arguments = _with_gain(arguments, function, activation, activation_place)
    return Initializer(name, function, arguments, place)


def _with_gain(
    arguments: dict[str, Any], function: Callable[..., Any], activation: object, place: Place
) -> dict[str, Any]:
    if not isinstance(activation, str):
        raise TrainingError(f"an activation is named by a string (ReLU, tanh...), got {activation!r}", path=place)
    gain_name = GAIN_NAMES.get(activation.lower().replace("_", ""))
    if gain_name is None:
        modules = [name for name in dir(torch.nn) if isinstance(getattr(torch.nn, name), type)]
        if activation.lower() not in {name.lower() for name in modules}:
            raise TrainingError(
                f"unknown activation {activation!r}{did_you_mean(activation, [*modules, *GAIN_NAMES.values()])}",
                path=place,
            )
        return arguments  # torch has no gain for it: the initializer's defaults stand
    parameters = inspect.signature(function).parameters
    derived = dict(arguments)
    if "gain" in parameters and "gain" not in derived:
        derived["gain"] = torch.nn.init.calculate_gain(cast(Any, gain_name))
    if "nonlinearity" in parameters and "nonlinearity" not in derived:
        derived["nonlinearity"] = gain_name
        if gain_name == "leaky_relu" and "a" not in derived:
            derived["a"] = LEAKY_RELU_SLOPE
    return derived


def is_weight_matrix(address: str, tensor: torch.Tensor) -> bool:
    """Whether an init spec without globs fills this parameter: rank 2 or more and ``weight`` in its
    name (``weight``, LSTM's ``weight_ih_l0``, attention's ``in_proj_weight``); never a bias or a
    norm's 1-D scale.

    >>> is_weight_matrix("head.weight", torch.zeros(2, 4)), is_weight_matrix("norm.weight", torch.zeros(4))
    (True, False)
    """
    named = "weight" in address.rpartition(".")[2]
    return named and (isinstance(tensor, torch.nn.parameter.UninitializedParameter) or tensor.dim() >= 2)


def plan_init(
    model: torch.nn.Module, spec: InitSpec, *, activation: str | None = None
) -> list[tuple[str, Initializer]]:
    """Which parameter each initializer fills, by address in the model's order, everything checked.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 8), fl.LayerNorm(8))
    >>> [(address, initializer.name) for address, initializer in plan_init(model, "xavier_uniform_")]
    [('Linear.weight', 'xavier_uniform_')]
    """
    parameters = dict(named_weights(model))
    if isinstance(spec, str) or "type" in spec:
        initializer = parse_initializer(spec, activation=activation)
        chosen = [(address, initializer) for address, tensor in parameters.items() if is_weight_matrix(address, tensor)]
    else:
        chosen = _by_glob(parameters, spec, activation)
    for address, initializer in chosen:
        tensor = parameters[address]
        if isinstance(tensor, torch.nn.parameter.UninitializedParameter):
            raise TrainingError(
                f"{address!r} has no size yet (a lazy layer): initialize after its sizes are known "
                "(fluxion.shapes.materialize, or one call of the model)",
                path=initializer.place,
            )
        initializer.check(tensor, address)
    return chosen


def _by_glob(
    parameters: Mapping[str, torch.Tensor], spec: Mapping[str, InitializerSpec], activation: str | None
) -> list[tuple[str, Initializer]]:
    given = cast(object, spec)
    if not isinstance(given, Mapping) or not spec:
        raise TrainingError(
            'an init spec is an initializer ("kaiming_uniform_", {"type": "normal_", "std": 0.02}) or initializers '
            f'by address glob ({{"*.bias": "zeros_"}}), got {given!r}'
        )
    claimed: dict[str, Initializer] = {}
    for glob, entry in spec.items():
        matched = [address for address in parameters if fnmatch.fnmatchcase(address, glob)]
        if not matched:
            raise TrainingError(f"{glob!r} matches no parameter{close_addresses(glob, parameters)}", path=(glob,))
        fresh = [address for address in matched if address not in claimed]
        if not fresh:
            earlier = claimed[matched[0]].place[0]
            raise TrainingError(
                f"every parameter {glob!r} matches is initialized by an earlier glob ({earlier!r}): the first glob "
                "that matches a parameter initializes it, so put the narrower one first",
                path=(glob,),
            )
        initializer = parse_initializer(entry, activation=activation, place=(glob,))
        claimed.update(dict.fromkeys(fresh, initializer))
    return [(address, claimed[address]) for address in parameters if address in claimed]


def initialize(model: torch.nn.Module, spec: InitSpec, *, activation: str | None = None) -> None:
    """Initialize ``model``'s parameters as ``spec`` says, in the model's order (deterministic given
    torch's seed); everything is checked before the first tensor changes.

    ``spec`` is a ``torch.nn.init`` name or ``{"type": name, **arguments}`` (TorchArc's spellings),
    which fills every weight matrix (see ``is_weight_matrix``), or a mapping of address globs to
    initializers (``{"encoder.*.weight": {"type": "normal_", "std": 0.02}, "*.bias": "zeros_"}``):
    each parameter is filled by the first glob that matches it. ``activation`` (or an initializer's
    ``"activation"`` key) gives the gain; see ``parse_initializer``. Shared parameters are filled once.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import training
    >>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU())
    >>> _ = torch.manual_seed(0)
    >>> training.initialize(model, "xavier_uniform_", activation="ReLU")
    >>> _ = torch.manual_seed(0)
    >>> expected = torch.nn.init.xavier_uniform_(torch.empty(8, 4), gain=2**0.5)
    >>> torch.equal(model.Linear.weight, expected)
    True
    """
    parameters = dict(named_weights(model))
    for address, initializer in plan_init(model, spec, activation=activation):
        initializer.fill(parameters[address])
