"""The largest activations of a model, from its shape report: what ``fluxion summary`` ranks.

An activation is the output of a leaf, or of a combinator that makes a new tensor (Residual,
Sum, Concatenate, Matmul, a LoRA). Its size is an expression in the input's symbols
(``802816*B``); to rank them, every symbol is given a value (1 unless said otherwise). Bytes assume
each layer's parameter dtype (the default dtype for a layer without parameters).

A tensor is counted once, where it is made: a node whose output shares its storage with a tensor
made before makes no new tensor and is not listed. Such are the layers that write into their input
(``inplace=True``: ``ReLU``, ``Add``...), the views (``Flatten``, ``Reshape``, ``Permute``,
``Slicing``, ``Chunk``...), the layers that hand on a tensor made elsewhere (``Identity``, ``Get``,
a context's ``SetContext`` and ``UseContext``) and the Chains that hand on their last child's.
Which these are is seen by running the model once on meta tensors (``outputs_made``): torch
decides, so a ``Reshape`` of a permuted tensor, which copies, is listed. A model that cannot run
there, and a node that did not run (a candidate a sampling ``Choice`` did not draw), is judged by
its classes instead (``makes_no_tensor``).

>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> model = fl.Chain(fl.Conv2d(3, 8, 3, padding=1), fl.ReLU(inplace=True), fl.Flatten(), fl.Linear(8 * 32 * 32, 10))
>>> report = shapes.infer(model, ("B", 3, 32, 32))
>>> input_symbols(report)
['B']
>>> for activation in largest_activations(report, {"B": 2}):  # ReLU and Flatten keep Conv2d's tensor
...     print(activation.address, activation.elements, activation.evaluated, activation.bytes)
Conv2d 8192*B 16384 65536
Linear 10*B 20 80
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ShapeError
from fluxion.shapes import ShapeReport
from fluxion.shapes.meta import run_on_meta
from fluxion.tree import node_class
from fluxion.tree.wrapping import is_wrapped

_PASSES_ON = (fl.Chain.forward, fl.Parallel.forward, fl.Distribute.forward, fl.Passthrough.forward, fl.Graph.forward)
"""The forwards of containers that only run their children and hand on what those return; a
Chain with any other forward (a Residual, a Sum, a LoRA, FiLM, a user's) may compute something new."""

_KEEPS_STORAGE = (
    # views of their input (a reshape copies a tensor that is not contiguous: after a Permute, say)
    torch.nn.Flatten,
    torch.nn.Unflatten,
    fl.Reshape,
    fl.Permute,
    fl.Transpose,
    fl.Squeeze,
    fl.Unsqueeze,
    fl.Slicing,
    fl.Narrow,
    fl.Chunk,
    fl.Split,
    fl.Unbind,
    # a tensor made elsewhere, handed on
    torch.nn.Identity,
    fl.Get,
    fl.OptionalInputs,
    fl.SetContext,
    fl.UseContext,
    fl.Return,
)


@dataclass(frozen=True)
class Activation:
    """One node's output: its address and class name, its shape (``output``), its number of
    elements as an expression of the symbols, that number at the values chosen, and its bytes.

    >>> from fluxion import dims
    >>> output = dims.Shape(["B", 64, 112, 112])
    >>> activation = Activation("conv1", "Conv2d", output, dims.product(output), 802816, 3211264)
    >>> activation.elements, activation.bytes
    (802816*B, 3211264)
    """

    address: str
    type: str
    output: ShapeValue
    elements: dims.Dim
    evaluated: int
    bytes: int


def largest_activations(report: ShapeReport, sizes: Mapping[str, int] | None = None, top: int = 10) -> list[Activation]:
    """The ``top`` largest activations with every symbol at its value in ``sizes`` (1 when absent).

    A node called several times counts with its largest output; a layer that makes no new tensor
    (``makes_no_tensor``) does not count.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> report = shapes.infer(fl.Chain(fl.Linear(4, 16), fl.Linear(16, 2)), ("B", 4))
    >>> [(a.address, a.elements, a.evaluated) for a in largest_activations(report, {"B": 8}, top=1)]
    [('Linear_1', 16*B, 128)]
    >>> largest_activations(report, {"B": 0})
    Traceback (most recent call last):
    fluxion.errors.ShapeError: largest_activations: the value of B is a positive whole number, got 0
    """
    given = dict(sizes or {})
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(cast(object, value), int) or value < 1:
            raise ShapeError(f"largest_activations: the value of {name} is a positive whole number, got {value!r}")
    if isinstance(top, bool) or not isinstance(cast(object, top), int) or top < 0:
        raise ShapeError(f"largest_activations: top is a count, 0 or more, got {top!r}")
    addresses = dict(cast(Iterator[tuple[str, torch.nn.Module]], report.model.named_modules(remove_duplicate=False)))
    made = outputs_made(report) or {}
    found: list[Activation] = []
    for address, shapes in report.items():
        module = addresses.get(address)
        if module is None or not made.get(address, not makes_no_tensor(module)):
            continue
        output = max((call.output for call in shapes.calls), key=lambda value: _evaluated(value, given))
        evaluated = _evaluated(output, given)
        found.append(
            Activation(
                address,
                node_class(module).__name__,
                output,
                _elements(output),
                evaluated,
                evaluated * _element_size(module),
            )
        )
    found.sort(key=lambda activation: -activation.evaluated)
    return found[:top]


def outputs_made(report: ShapeReport) -> dict[str, bool] | None:
    """For each node that runs, whether torch makes its output as a tensor of its own, seen by running
    the report's model once on meta tensors; None when the model cannot run there (an operation
    without a meta kernel, a size the rules cannot pick).

    An output is made by a node when its storage is none that the model's inputs or an earlier
    node's output have: a view shares its base's storage, an in-place layer returns its input. A
    node that does not run (a candidate a sampling ``Choice`` did not draw) is not in the answer.

    The run is at sizes of its own, whatever sizes the activations are ranked at: each symbol at
    the least multiple of what it must divide by (``assume``, the report's constraints) that is 64
    or more (sizes of 1 make views of what would be copies; a long sequence would only take longer),
    else 8 or more. The inputs are floating point, or integers (token ids) where the model does not
    run on those, and inputs given by name (``report.keywords``) are given by name. Nothing is
    allocated, and the model, its context and torch's random stream are left as they were; a model
    sharded with FSDP or wrapped by DDP is not run (its hooks keep state a run on stand-ins would break).

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(fl.Linear(8, 8), fl.Reshape(8, 16), fl.Permute(0, 2, 1), fl.Reshape(-1))
    >>> outputs_made(shapes.infer(model, ("B", 16, 8)))  # a view, a view, then a copy: not contiguous
    {'Linear': True, 'Reshape_1': False, 'Permute': False, 'Reshape_2': True, '': False}
    """
    if any(_distributed(module) for module in report.model.modules()):
        return None  # a forward through FSDP's or DDP's hooks on stand-ins would leave their state broken
    found = report.divisors()
    divisors = {name: found.get(name, 1) for name in input_symbols(report)}
    tried: list[dict[str, int]] = []
    for least in _RUN_SIZES:
        values = {name: divisor * -(-least // divisor) for name, divisor in divisors.items()}
        if values in tried:  # every divisor at least 64: the same sizes again
            continue
        tried.append(values)
        given = tuple(dims.substitute_shape(value, values) for value in report[""].inputs)
        if not all(dims.known(size) for value in given for shape in _shapes(value) for size in shape):
            return None
        count = len(given) - len(report.keywords)
        named = dict(zip(report.keywords, given[count:], strict=True))
        for dtype in (None, torch.int64):
            made = _made_on_meta(report.model, given[:count], named, dtype)
            if made is not None:
                return made
    return None


_RUN_SIZES = (64, 8)
"""The least value of each symbol in ``outputs_made``'s runs: the first run's sizes avoid 1, which
makes views of what would be copies (a permuted (1, 1, C) is still contiguous), and images too
small for a model's kernels; a model that needs small sizes (a table of 16 positions) runs at the
second's."""


def _made_on_meta(
    model: torch.nn.Module,
    inputs: tuple[ShapeValue, ...],
    named: Mapping[str, ShapeValue],
    dtype: torch.dtype | None,
) -> dict[str, bool] | None:
    storages: dict[int, torch.Tensor] = {}  # the tensors seen, by the id of the tensor owning their storage
    made: dict[str, bool] = {}

    def see(value: object) -> bool:
        new = False
        for tensor in _tensors(value):
            base = tensor._base if tensor._base is not None else tensor  # pyright: ignore[reportPrivateUsage]
            new = new or id(base) not in storages
            storages[id(base)] = base  # kept, so that its id is not reused
        return new

    def recorder(address: str) -> Callable[[torch.nn.Module, object, object], None]:
        def record(module: torch.nn.Module, args: object, output: object) -> None:
            made[address] = see(output) or made.get(address, False)

        return record

    def see_inputs(module: torch.nn.Module, args: object, kwargs: object) -> None:
        see((args, kwargs))

    handles = [model.register_forward_pre_hook(see_inputs, with_kwargs=True)]
    try:
        for address, module in cast(Iterator[tuple[str, torch.nn.Module]], model.named_modules(remove_duplicate=False)):
            handles.append(module.register_forward_hook(recorder(address)))
        # a layer that samples draws the same each time, and the caller's random stream is kept
        state = torch.get_rng_state()
        try:
            torch.set_rng_state(torch.Generator().manual_seed(0).get_state())
            run_on_meta(model, inputs, named, dtype=dtype)
        finally:
            torch.set_rng_state(state)
    except Exception:  # whatever stops the run, the classes decide instead
        return None
    finally:
        for handle in handles:
            handle.remove()
    return made


_WRAPPERS = ("FullyShardedDataParallel", "DistributedDataParallel")
"""The names of torch's wrapper classes (FSDP1, DDP) whose hooks keep state a run on stand-ins would break."""


def _distributed(module: torch.nn.Module) -> bool:
    """Whether ``module`` is sharded (FSDP2 swaps its class) or one of torch's FSDP1 and DDP wrappers
    (a checkpoint wrapper, also of torch.distributed, keeps no such state)."""
    kind = type(module)
    return is_wrapped(module) or (kind.__name__ in _WRAPPERS and kind.__module__.startswith("torch."))


def _tensors(value: object) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in cast(Sequence[object], value):
            yield from _tensors(item)
    elif isinstance(value, Mapping):
        for item in cast(Mapping[object, object], value).values():
            yield from _tensors(item)


def makes_no_tensor(module: torch.nn.Module) -> bool:
    """Whether ``module``'s output is no tensor of its own: a Chain that only runs its children
    (a Chain, Parallel, Distribute, Passthrough or Graph; a Residual, Sum, Concatenate, Matmul,
    LoRA, FiLM or any Chain with a forward of its own counts as making one), a layer that writes into
    its input (``inplace=True``), a view of its input, or a layer that hands on a tensor made
    elsewhere. A ``UseContext`` counts as handing on the tensor its ``SetContext`` stored (a
    ``callback`` that makes a new tensor to store is not seen).

    >>> import fluxion.layers as fl
    >>> [makes_no_tensor(layer) for layer in (fl.ReLU(), fl.ReLU(inplace=True), fl.Flatten(), fl.Linear(2, 2))]
    [False, True, True, False]
    >>> makes_no_tensor(fl.Chain(fl.Linear(2, 2))), makes_no_tensor(fl.Residual(fl.Linear(2, 2)))
    (True, False)
    """
    if isinstance(module, fl.Chain):
        return node_class(module).forward in _PASSES_ON
    return getattr(module, "inplace", False) is True or isinstance(module, _KEEPS_STORAGE)


def input_symbols(report: ShapeReport) -> list[str]:
    """The names of the symbols in the model's input shapes, in order.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> input_symbols(shapes.infer(fl.Chain(fl.Flatten()), ("B", 3, "H", "W")))
    ['B', 'H', 'W']
    """
    names: dict[str, None] = {}
    for value in report[""].inputs:
        for shape in _shapes(value):
            for size in shape:
                if not dims.known(size):
                    names.update(dict.fromkeys(sorted(str(symbol) for symbol in cast(Any, size).free_symbols)))
    return list(names)


def _elements(value: ShapeValue) -> dims.Dim:
    if value is None:
        return 0
    if isinstance(value, dims.Shape):
        return dims.product(value)
    total: dims.Dim = 0
    for item in dims.parts(value):
        total = dims.normal(total + _elements(item))
    return total


def _evaluated(value: ShapeValue, sizes: Mapping[str, int]) -> int:
    elements = _elements(value)
    if dims.known(elements):
        return int(elements)
    names = {str(symbol) for symbol in cast(Any, elements).free_symbols}
    result = dims.substitute(elements, {name: sizes.get(name, 1) for name in names})
    return int(result) if dims.known(result) else 0


def _element_size(module: torch.nn.Module) -> int:
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    return dtype.itemsize


def _shapes(value: ShapeValue) -> Iterator[dims.Shape]:
    if isinstance(value, dims.Shape):
        yield value
    else:
        for item in dims.parts(value):
            yield from _shapes(item)
