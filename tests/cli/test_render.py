"""``fluxion render``: a node for every leaf, a box for every Chain, in DOT text and in Graphviz's SVG."""

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec
from fluxion.cli import dot as dot_module
from tests.cli.helpers import CONVS, EXAMPLES, ROOT, fails, run, write_spec

RESNET = ROOT / "examples" / "resnet.jsonnet"
needs_dot = pytest.mark.skipif(dot_module.dot_program() is None, reason="Graphviz's dot program is not installed")

MIXED = {
    "type": "Chain",
    "inputs": {"x": ["B", 16]},
    "children": [
        {"type": "SetContext", "context": "net", "key": "skip"},
        {"type": "Residual", "id": "res", "children": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"}]},
        {
            "type": "Parallel",
            "id": "heads",
            "children": [
                {"type": "Linear", "id": "a", "out_features": 8},
                {"type": "Linear", "id": "b", "out_features": 8},
            ],
        },
        {"type": "Distribute", "children": [{"type": "Tanh"}, {"type": "Sigmoid"}]},
        {"type": "Add", "id": "merge"},
        {
            "type": "Concatenate",
            "id": "cat",
            "dim": -1,
            "children": [{"type": "Identity"}, {"type": "UseContext", "context": "net", "key": "skip"}],
        },
    ],
}

_ID = r'"(?:[^"\\]|\\.)*"|[A-Za-z_]\w*'
_NODE = re.compile(rf"^\s*({_ID})\s*\[")
_EDGE = re.compile(rf"^\s*({_ID})\s*->\s*({_ID})\s*(\[.*\])?$")
_SUBGRAPH = re.compile(rf"^\s*subgraph\s+({_ID})\s*\{{")


def _unquote(name: str) -> str:
    return name[1:-1].replace('\\"', '"') if name.startswith('"') else name


def parse_dot(text: str) -> tuple[set[str], list[tuple[str, str, str]], set[str]]:
    """The node names, edges (with their attributes) and subgraph names of DOT text."""
    nodes: set[str] = set()
    edges: list[tuple[str, str, str]] = []
    subgraphs: set[str] = set()
    for line in text.splitlines():
        if match := _EDGE.match(line):
            edges.append((_unquote(match[1]), _unquote(match[2]), match[3] or ""))
        elif match := _SUBGRAPH.match(line):
            subgraphs.add(_unquote(match[1]))
        elif (match := _NODE.match(line)) and match[1] not in ("node", "edge", "graph"):
            nodes.add(_unquote(match[1]))
    return nodes, edges, subgraphs


def tree(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    return cast(Iterator[tuple[str, torch.nn.Module]], model.named_modules())


def leaves_and_chains(model: torch.nn.Module) -> tuple[set[str], set[str]]:
    leaves = {address for address, module in tree(model) if not isinstance(module, fl.Chain)}
    chains = {f"cluster_{address}" for address, module in tree(model) if isinstance(module, fl.Chain)}
    return leaves, chains


def test_dot_has_a_node_for_every_leaf_and_a_cluster_for_every_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "resnet.dot"
    result = run(capsys, "render", str(RESNET), "-o", str(output))
    assert (result.code, result.err) == (0, "")
    assert result.out.strip() == f"{output}: 71 nodes, 16 boxes"
    nodes, edges, subgraphs = parse_dot(output.read_text())
    leaves, chains = leaves_and_chains(spec.load(RESNET, device="meta"))
    assert nodes == leaves | {"/input/image", "/output"}
    assert subgraphs == chains
    assert ("layer2.0.downsample.1", "layer2.0.add", '[color="#5f6368"]') in edges
    assert ("layer1.0.relu_out", "layer1.1.conv1", '[color="#5f6368"]') in edges
    assert ("maxpool", "layer1.0.add", '[color="#5f6368"]') in edges  # the Graph's skip edge


def test_dot_draws_combinators_and_context_as_data_flow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(MIXED))
    result = run(capsys, "render", str(path), "-o", "-", "--direction", "LR")
    assert result.code == 0
    assert "rankdir=LR" in result.out
    nodes, edges, subgraphs = parse_dot(result.out)
    leaves, chains = leaves_and_chains(spec.load(path, device="meta"))
    assert nodes == leaves | {"/input/x", "/output", "res/add", "cat/cat"}
    assert subgraphs == chains
    kinds = {(source, target): attributes for source, target, attributes in edges}
    assert "penwidth" in kinds["SetContext", "res/add"]  # the skip edge
    assert "dashed" in kinds["SetContext", "cat.UseContext"]  # the context edge
    assert ("merge", "cat.UseContext") not in kinds  # UseContext ignores its input
    assert {("heads.a", "Distribute.Tanh"), ("heads.b", "Distribute.Sigmoid")} <= set(kinds)


def test_depth_folds_chains_into_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "render", str(RESNET), "--depth", "1", "-o", "-")
    nodes, _, subgraphs = parse_dot(result.out)
    assert subgraphs == {"cluster_"}
    assert {"layer1", "layer4", "conv1", "fc"} <= nodes
    assert "layer1.0.conv1" not in nodes


def test_without_dot_a_dot_file_still_works_and_other_formats_say_what_to_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    result = run(capsys, "render", str(RESNET), "-o", str(tmp_path / "resnet.svg"))
    assert result.code == 1
    assert (
        "needs Graphviz's dot program, which is not installed: install Graphviz (Debian/Ubuntu: apt-get" in result.err
    )
    assert not (tmp_path / "resnet.svg").exists()
    assert run(capsys, "render", str(RESNET), "-o", str(tmp_path / "resnet.dot")).code == 0


def svg_titles(path: Path, kind: str) -> set[str]:
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    root = ElementTree.parse(path).getroot()
    groups = root.iterfind(f".//svg:g[@class='{kind}']", namespace)
    return {cast(str, group.findtext("svg:title", namespaces=namespace)) for group in groups}


@needs_dot
def test_svg_has_a_node_for_every_leaf_and_a_cluster_for_every_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "resnet.svg"
    result = run(capsys, "render", str(RESNET), "-o", str(output))
    assert (result.code, result.err) == (0, "")  # no progress line: stderr is not a terminal
    leaves, chains = leaves_and_chains(spec.load(RESNET, device="meta"))
    assert svg_titles(output, "node") == leaves | {"/input/image", "/output"}
    assert svg_titles(output, "cluster") == chains
    assert len(svg_titles(output, "edge")) > len(leaves)


@needs_dot
@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_png_and_pdf(capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str) -> None:
    output = tmp_path / f"convnet.{suffix}"
    assert run(capsys, "render", str(ROOT / "examples" / "convnet.jsonnet"), "-o", str(output)).code == 0
    assert output.read_bytes()[:4] == (b"\x89PNG" if suffix == "png" else b"%PDF")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_renders_with_a_node_for_every_leaf_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, example: Path
) -> None:
    output = tmp_path / f"{example.stem}.dot"
    result = run(capsys, "render", str(example), "-o", str(output), "--depth", "2")
    assert (result.code, result.err) == (0, "")
    nodes, edges, _ = parse_dot(output.read_text())
    assert nodes
    assert edges
    assert "/output" in nodes


def test_assume_is_applied_and_captions_the_diagram(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    output = tmp_path / "convs.dot"
    result = run(capsys, "render", path, "-o", str(output), "--assume", "H%8==0", "--assume", "W%8==0")
    assert result.code == 0, result.err
    assert result.out.strip().endswith("(assuming H % 8 == 0, W % 8 == 0)")
    text = output.read_text()
    assert "(B, 4, H/8, W/8)" in text
    assert text.rstrip().endswith(
        'label="assuming: H % 8 == 0\\lassuming: W % 8 == 0\\l"\n\tlabelloc=b\n\tlabeljust=l\n}'
    )
    assert "assuming" not in run(capsys, "render", path, "-o", "-").out
    fails(run(capsys, "render", path, "-o", "-", "--assume", "H"), 2, "error: --assume: ")
