"""A data flow as Graphviz DOT text: the one module that uses the ``graphviz`` package.

Nodes are named by their flow ids (tree addresses), Chains become clusters named
``cluster_<address>``, and labels are Graphviz's HTML-like labels: the title in bold, the key
arguments, then the output shape. Give ``dot_source`` a model for its whole data flow, or a
``Flow`` from ``data_flow`` to choose the depth, the shapes and the input names. The text is what
``fluxion render -o model.dot`` writes; Graphviz's ``dot`` program lays it out (``dot -Tsvg``).

>>> import fluxion.layers as fl
>>> source = dot_source(fl.Chain(fl.Linear(2, 3), fl.ReLU()), direction="LR")
>>> "rankdir=LR" in source, "Linear -> ReLU" in source
(True, True)
"""

from __future__ import annotations

import html
import textwrap
from typing import Literal, Protocol, cast

import graphviz  # pyright: ignore[reportMissingTypeStubs]  # pure Python, no stubs published
import torch

from fluxion.errors import TreeError
from fluxion.inspect.flow import Flow, FlowCluster, FlowNode, data_flow

Direction = Literal["TB", "LR"]
"""Which way the data flows on the page: top to bottom, or left to right."""

_FONT = "Helvetica"
_WRAP = 40
_CLUSTER_FILLS = ("#f8f9fa", "#eef3fb", "#f1f8ee", "#fbf5ec")
_NODE_STYLES: dict[str, dict[str, str]] = {
    "leaf": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff", "color": "#5f6368"},
    "folded": {"shape": "box3d", "style": "filled", "fillcolor": "#fdf2d0", "color": "#8d6e00"},
    "merge": {"shape": "circle", "style": "filled", "fillcolor": "#e8eaed", "color": "#5f6368", "margin": "0.02"},
    "input": {"shape": "oval", "style": "filled", "fillcolor": "#e6f4ea", "color": "#188038"},
    "output": {"shape": "oval", "style": "filled", "fillcolor": "#fce8e6", "color": "#c5221f"},
}
_EDGE_STYLES: dict[str, dict[str, str]] = {
    "data": {"color": "#5f6368"},
    "skip": {"color": "#d93025", "penwidth": "1.6"},
    "context": {"color": "#1a73e8", "style": "dashed", "constraint": "false"},
}


class _Graph(Protocol):
    """The part of ``graphviz.Digraph`` used here, typed."""

    @property
    def source(self) -> str: ...

    def attr(self, kw: str | None = None, /, **attrs: str) -> None: ...

    def node(self, name: str, /, label: str | None = None, **attrs: str) -> None: ...

    def edge(self, tail_name: str, head_name: str, /, **attrs: str) -> None: ...

    def subgraph(self, graph: _Graph, /) -> None: ...


def _digraph(name: str | None = None) -> _Graph:
    return cast(_Graph, graphviz.Digraph(name=name))


def dot_source(flow: Flow | torch.nn.Module, *, direction: Direction = "TB") -> str:
    """The DOT text of ``flow`` (or of a model's whole data flow), laid out from top to bottom
    (``"TB"``) or left to right (``"LR"``).

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> from fluxion.inspect.flow import data_flow
    >>> model = fl.Chain(fl.Linear(4, 2), fl.ReLU())
    >>> print(dot_source(model).splitlines()[0])
    digraph {
    >>> flow = data_flow(model, depth=0, report=shapes.infer(model, ("B", 4)))
    >>> [line.split(" [")[0].strip() for line in dot_source(flow).splitlines() if "->" in line]
    ['"/input/input" -> "/root"', '"/root" -> "/output"']
    """
    if direction not in ("TB", "LR"):
        raise TreeError(f"dot_source: direction is 'TB' (top to bottom) or 'LR' (left to right), got {direction!r}")
    if not isinstance(flow, Flow):
        flow = data_flow(flow)
    graph = _digraph()
    graph.attr(rankdir=direction, fontname=_FONT, fontsize="11", nodesep="0.3", ranksep="0.35", newrank="true")
    graph.attr("node", fontname=_FONT, fontsize="11", margin="0.1,0.05")
    graph.attr("edge", arrowsize="0.7")
    nodes: dict[str | None, list[FlowNode]] = {}
    for node in flow.nodes:
        nodes.setdefault(node.cluster, []).append(node)
    clusters: dict[str | None, list[FlowCluster]] = {}
    for cluster in flow.clusters:
        clusters.setdefault(cluster.parent, []).append(cluster)
    _fill(graph, nodes, clusters, None, 0)
    for edge in flow.edges:
        graph.edge(_name(edge.source), _name(edge.target), **_EDGE_STYLES[edge.kind])
    return graph.source


def _fill(
    graph: _Graph,
    nodes: dict[str | None, list[FlowNode]],
    clusters: dict[str | None, list[FlowCluster]],
    cluster: str | None,
    level: int,
) -> None:
    """Add the nodes and clusters directly inside ``cluster`` (None: outside all) to ``graph``."""
    for node in nodes.get(cluster, []):
        graph.node(_name(node.id), label=_node_label(node), **_NODE_STYLES[node.kind])
    for inner in clusters.get(cluster, []):
        sub = _digraph(_name(f"cluster_{inner.address}"))
        sub.attr(
            label=_cluster_label(inner),
            labeljust="l",
            style="rounded,filled",
            fillcolor=_CLUSTER_FILLS[level % len(_CLUSTER_FILLS)],
            color="#9aa0a6",
            fontname=_FONT,
            fontsize="10",
        )
        _fill(sub, nodes, clusters, inner.address, level + 1)
        graph.subgraph(sub)


def _name(node_id: str) -> str:
    # graphviz reads "a:b" in an edge as node a, port b: a colon in a name must not survive
    return graphviz.nohtml(node_id.replace(":", "\u2236"))


def _node_label(node: FlowNode) -> str:
    lines = [f"<B>{html.escape(node.title)}</B>"]
    lines += [f'<FONT POINT-SIZE="9">{html.escape(line)}</FONT>' for line in _wrapped(node.details)]
    if node.shape is not None and node.kind != "merge":
        lines.append(f'<FONT POINT-SIZE="9" COLOR="#1a4d8f">{html.escape(node.shape)}</FONT>')
    return f"<{'<BR/>'.join(lines)}>"


def _cluster_label(cluster: FlowCluster) -> str:
    head = f"<B>{html.escape(cluster.title)}</B>"
    if cluster.details:
        head += f" {html.escape(cluster.details)}"
    if cluster.shape is not None:
        head += f'  <FONT COLOR="#1a4d8f">→ {html.escape(cluster.shape)}</FONT>'
    return f"<{head}>"


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, _WRAP, break_long_words=False, break_on_hyphens=False) if text else []
