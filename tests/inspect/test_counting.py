"""Counting: tensors, elements and bytes by dtype (tied tensors once), layers by type, human sizes."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.inspect.counting import (
    LayerCount,
    Totals,
    human_bytes,
    human_count,
    layer_counts,
    parameter_count,
    tensor_totals,
)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8]


def tied() -> fl.Chain:
    first, second = fl.Linear(4, 4), fl.Linear(4, 4)
    second.weight = first.weight
    return fl.Chain(first, fl.ReLU(), second)


def test_tied_parameters_count_once() -> None:
    model = tied()
    assert parameter_count(model) == 16 + 4 + 4
    assert tensor_totals(model.parameters()) == Totals(3, 24, 96, {"float32": (24, 96)})


def test_totals_by_dtype_and_on_meta() -> None:
    with torch.device("meta"):
        model = fl.Chain(fl.Linear(1000, 1000), fl.BatchNorm1d(1000))
    model.Linear.half()
    parameters = tensor_totals(model.parameters())
    assert parameters.by_dtype == {"float16": (1_001_000, 2_002_000), "float32": (2000, 8000)}
    buffers = tensor_totals(model.buffers())
    assert buffers.by_dtype == {"float32": (2000, 8000), "int64": (1, 8)}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.integers(0, 5), max_size=3), st.sampled_from(DTYPES)), min_size=0, max_size=6
    ).flatmap(lambda specs: st.tuples(st.just(specs), st.lists(st.integers(0, max(len(specs) - 1, 0)), max_size=10)))
)
def test_totals_are_the_sums_over_distinct_tensors(
    case: tuple[list[tuple[list[int], torch.dtype]], list[int]],
) -> None:
    specs, picks = case
    tensors = [torch.zeros(shape, dtype=dtype, device="meta") for shape, dtype in specs]
    given_tensors = tensors + [tensors[i] for i in picks if tensors]  # every tensor, and some again
    totals = tensor_totals(given_tensors)
    assert totals.tensors == len(tensors)
    assert totals.elements == sum(tensor.numel() for tensor in tensors)
    assert totals.bytes == sum(tensor.numel() * tensor.element_size() for tensor in tensors)
    assert sum(elements for elements, _ in totals.by_dtype.values()) == totals.elements
    assert sum(size for _, size in totals.by_dtype.values()) == totals.bytes
    assert list(totals.by_dtype) == sorted(totals.by_dtype)


def test_layer_counts_by_type_most_parameters_first() -> None:
    model = fl.Chain(fl.Conv2d(3, 4, 3), fl.Chain(fl.Linear(4, 4), fl.ReLU(), fl.ReLU()), fl.ReLU(), fl.Flatten())
    assert layer_counts(model) == [
        LayerCount("Conv2d", 1, 3 * 4 * 9 + 4),
        LayerCount("Linear", 1, 20),
        LayerCount("ReLU", 3, 0),
        LayerCount("Flatten", 1, 0),
    ]


def test_a_tied_parameter_counts_once_with_the_first_layer_that_holds_it() -> None:
    embedding, head = fl.Embedding(10, 4), fl.Linear(4, 10)
    head.weight = embedding.weight
    model = fl.Chain(embedding, fl.Chain(fl.ReLU(), head))
    assert layer_counts(model) == [
        LayerCount("Embedding", 1, 40),
        LayerCount("Linear", 1, 10),
        LayerCount("ReLU", 1, 0),
    ]
    assert sum(count.parameters for count in layer_counts(model)) == parameter_count(model)
    assert sum(count.parameters for count in layer_counts(tied())) == parameter_count(tied())


def test_a_plain_torch_module_in_a_chain_is_one_layer_and_so_is_a_model_that_is_not_a_chain() -> None:
    sequential = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    assert layer_counts(fl.Chain(sequential)) == [LayerCount("Sequential", 1, 6)]
    assert layer_counts(sequential) == [LayerCount("Sequential", 1, 6)]
    assert layer_counts(fl.Chain()) == []


def test_human_count_and_bytes_at_their_boundaries() -> None:
    assert [human_count(n) for n in (0, 999, 1000, 999_949, 10**6, 10**9, 12 * 10**12)] == [
        "0",
        "999",
        "1.0K",
        "999.9K",
        "1.0M",
        "1.0B",
        "12000.0B",
    ]
    assert [human_bytes(n) for n in (0, 1023, 1024, 2**20 - 1, 2**20, 2**30, 2**40, 2**50)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1024.0 KiB",
        "1.0 MiB",
        "1.0 GiB",
        "1.0 TiB",
        "1024.0 TiB",
    ]
