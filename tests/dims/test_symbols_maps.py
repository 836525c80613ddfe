"""ShapeMap: values by name, as a Graph's named outputs flow through shape inference."""

from hypothesis import given
from hypothesis import strategies as st

from fluxion import dims
from fluxion.shapes.report import format_value


def test_a_shape_map_is_a_read_only_ordered_mapping() -> None:
    value = dims.ShapeMap({"b": dims.Shape(["B", 2]), "a": None})
    assert list(value) == ["b", "a"]
    assert len(value) == 2
    assert value == {"b": dims.Shape(["B", 2]), "a": None}
    assert hash(value) == hash(dims.ShapeMap([("b", dims.Shape(["B", 2])), ("a", None)]))
    assert not dims.several(value)  # one value: a node given it receives one argument
    assert repr(value) == format_value(value) == "{b: (B, 2), a: None}"


def test_substitution_and_parts_reach_inside_maps() -> None:
    value = dims.ShapeMap({"x": (dims.Shape(["B", "T"]), dims.ShapeMap({"y": dims.Shape(["T"])}))})
    assert dims.substitute_shape(value, {"T": 3}) == {"x": (dims.Shape(["B", 3]), {"y": dims.Shape([3])})}
    assert dims.parts(value) == ((dims.Shape(["B", "T"]), dims.ShapeMap({"y": dims.Shape(["T"])})),)
    assert dims.parts(None) == ()


shape_values = st.recursive(
    st.none() | st.lists(st.integers(0, 9) | st.sampled_from(["B", "T"]), max_size=3).map(dims.Shape),
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3).map(dims.ShapeMap)
    ),
    max_leaves=8,
)


@given(shape_values)
def test_mapping_the_identity_keeps_every_value(value: dims.ShapeValue) -> None:
    mapped = dims.map_shapes(value, lambda shape: shape)
    assert mapped == value
    assert type(mapped) is type(value)
    assert format_value(mapped) == format_value(value)
