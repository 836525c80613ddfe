"""``dot_source``: a model's data flow as DOT text Graphviz reads (names, labels and styles)."""

import re

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes
from fluxion.errors import TreeError
from fluxion.inspect.diagram import dot_source
from fluxion.inspect.flow import data_flow


def test_a_model_gives_the_dot_of_its_whole_data_flow() -> None:
    model = fl.Chain(fl.Residual(fl.Linear(4, 4)), head=fl.Linear(4, 2))
    assert dot_source(model) == dot_source(data_flow(model))
    assert dot_source(model, direction="LR") == dot_source(data_flow(model), direction="LR")
    assert "rankdir=TB" in dot_source(model)
    assert "rankdir=LR" in dot_source(model, direction="LR")


def test_chains_are_clusters_and_each_edge_kind_has_its_style() -> None:
    model = fl.Chain(
        fl.SetContext("net", "x"), fl.Residual(fl.Linear(4, 4)), fl.Sum(fl.Identity(), fl.UseContext("net", "x"))
    )
    source = dot_source(model)
    assert re.findall(r"subgraph (\S+) \{", source) == ["cluster_", "cluster_Residual", "cluster_Sum"]
    assert '"Residual.Linear" -> "Residual/add" [color="#5f6368"]' in source
    assert 'SetContext -> "Residual/add" [color="#d93025" penwidth=1.6]' in source  # skip
    assert 'SetContext -> "Sum.UseContext" [color="#1a73e8" constraint=false style=dashed]' in source  # context


def test_labels_hold_the_title_the_key_arguments_and_the_shape() -> None:
    model = fl.Chain(conv=fl.Conv2d(3, 8, 3, padding=1))
    flow = data_flow(model, report=shapes.infer(model, ("B", 3, "H", "W")))
    line = next(line for line in dot_source(flow).splitlines() if line.strip().startswith("conv ["))
    assert "<B>conv: Conv2d</B>" in line
    assert '<FONT POINT-SIZE="9">3, 8, kernel_size=3, padding=1</FONT>' in line
    assert '<FONT POINT-SIZE="9" COLOR="#1a4d8f">(B, 8, H, W)</FONT>' in line


def test_markup_in_labels_is_escaped_and_a_colon_in_a_name_is_not_a_port() -> None:
    class Marked(torch.nn.Module):
        def extra_repr(self) -> str:
            return "when=<a & b>"

    source = dot_source(fl.Chain(**{"a:b": fl.ReLU()}, marked=Marked()))
    assert "when=&lt;a &amp; b&gt;" in source
    assert '"/input/input" -> "a\u2236b"' in source
    assert "a:b ->" not in source


def test_a_direction_other_than_tb_or_lr_is_refused() -> None:
    with pytest.raises(TreeError, match=r"direction is 'TB' .* or 'LR' .*, got 'BT'"):
        dot_source(fl.Chain(), direction="BT")  # pyright: ignore[reportArgumentType]
