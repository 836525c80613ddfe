"""Looking at a model without running it: its data flow, its counts, and whether a checkpoint fits.

What the ``fluxion`` command shows, as Python functions over any tree (or any ``torch.nn.Module``):

- ``data_flow(model)``: nodes, edges and clusters as the data flows (``fluxion render``), and
  ``dot_source(model)``: that flow as Graphviz DOT text;
- ``tensor_totals``, ``parameter_count``, ``layer_counts``: parameters and buffers by dtype,
  tied tensors once, and the layers by type (``fluxion show``, ``fluxion summary``);
- ``largest_activations(report)``: the biggest outputs of a shape report, at given symbol values;
- ``check_weights(model, path)``: which checkpoint keys would load, and which are missing,
  unexpected or mismatched, reading only the file's header (``fluxion show --weights``).

Everything works on models built on the ``meta`` device: only shapes and dtypes are read.

>>> import fluxion.layers as fl
>>> from fluxion import inspect
>>> model = fl.Chain(fl.Residual(fl.Linear(4, 4)), head=fl.Linear(4, 2))
>>> inspect.parameter_count(model), inspect.human_count(12_345)
(30, '12.3K')
>>> inspect.data_flow(model).sources("Residual/add", "skip")
['/input/input']
"""

from fluxion.inspect.activations import Activation, input_symbols, largest_activations
from fluxion.inspect.checkpoint import WeightsCheck, check_weights
from fluxion.inspect.counting import (
    LayerCount,
    Totals,
    human_bytes,
    human_count,
    layer_counts,
    parameter_count,
    tensor_totals,
)
from fluxion.inspect.diagram import Direction, dot_source
from fluxion.inspect.flow import (
    OUTPUT,
    EdgeKind,
    Flow,
    FlowCluster,
    FlowEdge,
    FlowNode,
    NodeKind,
    data_flow,
    input_id,
)
from fluxion.inspect.labels import key_arguments, title

__all__ = [
    "OUTPUT",
    "Activation",
    "Direction",
    "EdgeKind",
    "Flow",
    "FlowCluster",
    "FlowEdge",
    "FlowNode",
    "LayerCount",
    "NodeKind",
    "Totals",
    "WeightsCheck",
    "check_weights",
    "data_flow",
    "dot_source",
    "human_bytes",
    "human_count",
    "input_id",
    "input_symbols",
    "key_arguments",
    "largest_activations",
    "layer_counts",
    "parameter_count",
    "tensor_totals",
    "title",
]
