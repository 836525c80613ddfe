"""A translation maps places in the spec back to the file the user wrote."""

from fluxion.spec.translation import Origin, Translation


def test_a_place_reads_back_as_the_nearest_nodes_origin_with_its_key() -> None:
    found = Translation(
        {},
        {
            "": Origin("", {"inputs": "graph.input"}),
            "nodes[0]": Origin("modules.mlp"),
            "nodes[0].children[1]": Origin("modules.mlp.Sequential[1]", {"out_features": "Linear.out_features"}),
        },
    )
    assert found.source_path("nodes[0].children[1].out_features") == "modules.mlp.Sequential[1].Linear.out_features"
    assert found.source_path("nodes[0].children[1].bias") == "modules.mlp.Sequential[1]"
    assert found.source_path("nodes[0].children[10]") == "modules.mlp"  # children[1] is no prefix of children[10]
    assert found.source_path("inputs") == "graph.input"
    assert found.source_path(None) is None


def test_without_an_origin_a_place_is_its_own() -> None:
    assert Translation({}, {"nodes[0]": Origin("modules.a")}).source_path("edges[2]") == "edges[2]"


def test_by_default_a_translation_names_no_classes_and_sizes_are_not_left_to_the_first_call() -> None:
    found = Translation({"type": "ReLU"}, {})
    assert dict(found.classes) == {}
    assert not found.materialize_on_call
