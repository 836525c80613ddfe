"""Random and mutated specs: whatever comes in, the only exception that may come out is SpecError."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxion import spec
from fluxion.spec import SpecError
from tests.spec.mutations import locations

SEEDS: list[dict[str, Any]] = [
    {
        "type": "Chain",
        "inputs": {"x": ["B", 3, 8, 8]},
        "children": [
            {"type": "Conv2d", "id": "conv", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "Flatten"},
            {"type": "Linear", "id": "head", "out_features": 10},
        ],
    },
    {
        "type": "Graph",
        "inputs": {"x": ["B", 4], "y": ["B", 4]},
        "nodes": [
            {"type": "Linear", "id": "a", "out_features": 4},
            {"type": "Add", "id": "add"},
            {"type": "LayerNorm", "id": "norm"},
        ],
        "edges": ["x -> a -> add -> norm", "y -> add"],
        "outputs": ["norm"],
    },
    {
        "type": "Chain",
        "inputs": {"x": ["B", "T", 8]},
        "children": [
            {"type": "Residual", "children": [{"type": "LayerNorm"}, {"type": "MultiHeadAttention", "num_heads": 2}]},
            {"type": "Embedding", "id": "e", "num_embeddings": 4, "embedding_dim": 8, "share": "e"},
            {"type": "Concatenate", "dim": -1, "children": [{"type": "Identity"}, {"type": "Tanh"}]},
        ],
    },
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    document: Any = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        places = locations(document)
        place = draw(st.sampled_from(places))
        if not place:
            document = draw(json_values) if draw(st.booleans()) else document
            continue
        parent = document
        for key in place[:-1]:
            parent = parent[key]
        last = place[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "duplicate"]))
        if action == "replace":
            parent[last] = draw(json_values | st.sampled_from(["ReLU", "Graph", "Chain", "B", "x -> a", -1, 0]))
        elif action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[
                draw(
                    st.sampled_from(["id", "type", "share", "children", "nodes", "edges", "args", "spec", "dim", "zz"])
                )
            ] = parent.pop(last)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return document


def only_spec_errors(document: Any) -> None:
    with contextlib.suppress(SpecError):
        spec.loads(document)


@given(mutated_specs())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_specs_load_or_raise_a_spec_error(document: Any) -> None:
    only_spec_errors(document)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_random_json_loads_or_raises_a_spec_error(document: Any) -> None:
    only_spec_errors(document)


def test_the_seeds_load() -> None:
    for document in SEEDS:
        spec.loads(document)
