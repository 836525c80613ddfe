"""Diagrams of narchi files keep narchi's names: a block's ``_name`` labels its box (``0: BasicBlock``
where the class would say ``0: Graph``), a Module block's ``_name`` its file's box, and the
architecture's output ids label the output (``logits``, not ``output``), through ``fluxion.inspect``
and through ``fluxion render``'s DOT output."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxion import inspect, shapes, spec
from fluxion.cli import main

NARCHI = Path(__file__).parents[1] / "spec" / "narchi"
RESNET = NARCHI / "resnet.jsonnet"
MULTISCALE = NARCHI / "shared" / "multiscale.jsonnet"


def test_a_blocks_name_labels_its_box() -> None:
    model = spec.load(RESNET, ext_vars={"num_blocks": [1, 1, 1, 1]})
    flow = inspect.data_flow(model, depth=3)
    titles = {cluster.address: cluster.title for cluster in flow.clusters}
    assert titles["layer1.0"] == "0: BasicBlock"  # a Group: a Graph or a Chain in fluxion
    assert titles["layer1"] == "layer1: Chain"  # no _name: the class, as before
    assert flow.node(inspect.OUTPUT).title == "logits"
    source = inspect.dot_source(flow)
    assert "<B>0: BasicBlock</B>" in source
    assert "<B>logits</B>" in source
    assert "<B>output</B>" not in source
    assert inspect.data_flow(model, depth=1).node("layer1").title == "layer1: Chain"
    assert inspect.data_flow(model, depth=2).node("layer1.0").title == "0: BasicBlock"  # folded


def test_a_module_blocks_name_labels_the_file_it_names() -> None:
    model = spec.load(MULTISCALE, ext_vars={"width": 4, "classes": 3})
    report = shapes.infer(model, image=("B", 3, "H", "W"))
    flow = inspect.data_flow(model, report=report)
    titles = {cluster.address: cluster.title for cluster in flow.clusters}
    assert [titles[name] for name in ("full", "halved", "quartered")] == [
        "full: Backbone",
        "halved: Backbone",
        "quartered: Backbone",
    ]
    assert flow.node(inspect.OUTPUT).title == "logits"
    assert flow.node(inspect.input_id("image")).title == "image"


def test_multiple_outputs_are_all_named() -> None:
    model = spec.load(NARCHI / "multimodal.jsonnet", ext_vars={"vocabulary": 20})
    assert (
        inspect.data_flow(model).node(inspect.OUTPUT).title == "category, quality"
    )  # the output ids, not the nodes they take (category_prob...)


def test_render_writes_narchis_names_in_the_dot_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "multiscale.dot"
    arguments = ["render", str(MULTISCALE), "--ext-code", "width=4", "--ext-code", "classes=3", "-o", str(output)]
    assert main(arguments) == 0
    capsys.readouterr()
    source = output.read_text()
    assert "<B>halved: Backbone</B>" in source
    assert "<B>logits</B>" in source
    assert "<B>output</B>" not in source
    resnet = tmp_path / "resnet.dot"
    assert main(["render", str(RESNET), "--ext-code", "num_blocks=[1, 1, 1, 1]", "-o", str(resnet)]) == 0
    assert "<B>0: BasicBlock</B>" in resnet.read_text()
