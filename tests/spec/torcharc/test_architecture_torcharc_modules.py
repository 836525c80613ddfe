"""TorchArc's own modules through whole specs, each against the same computation in plain torch with
the same weights: FiLM's gamma/beta keys and IndexSelect's index buffer as TorchArc lays them out,
Get after a module returning a tuple, Narrow, Reduce, TorchFn, the forks and the merges."""

from pathlib import Path
from typing import Any

import pytest
import torch

from fluxion import spec

HERE = Path(__file__).parent


class Film(torch.nn.Module):
    """TorchArc's MergeFiLM written out: gamma and beta from the conditioner, per channel."""

    def __init__(self, features: int, conditioner: int) -> None:
        super().__init__()
        self.gamma = torch.nn.Linear(conditioner, features)
        self.beta = torch.nn.Linear(conditioner, features)

    def forward(self, feature: torch.Tensor, conditioner: torch.Tensor) -> torch.Tensor:
        extra = (1,) * (feature.dim() - conditioner.dim())
        gamma = self.gamma(conditioner).view(*conditioner.shape[:-1], -1, *extra)
        beta = self.beta(conditioner).view(*conditioner.shape[:-1], -1, *extra)
        return gamma * feature + beta


class FilmByHand(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_0 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        self.state = torch.nn.Linear(2, 5)
        self.film_0 = Film(4, 5)
        self.conv_1 = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU())
        self.film_1 = Film(6, 5)
        self.register_buffer("pick_index", torch.tensor([0, 2, 5]))

    def forward(self, image: torch.Tensor, gyro: torch.Tensor) -> torch.Tensor:
        state = self.state(gyro)
        x = self.film_1(self.conv_1(self.film_0(self.conv_0(image), state)), state)
        return torch.index_select(x, 1, self.pick_index).mean(dim=[2, 3])


def test_film_and_index_select_have_torcharcs_keys_and_compute_the_same() -> None:
    model = spec.load(HERE / "film.yaml", inputs={"image": ["B", 3, 10, 10], "gyro": ["B", 2]})
    keys = list(model.state_dict())
    # TorchArc's order is the graph's: conv_0, state, film_0, conv_1, film_1, pick
    assert keys == [
        "conv_0.0.weight", "conv_0.0.bias", "state.weight", "state.bias",
        "film_0.gamma.weight", "film_0.gamma.bias", "film_0.beta.weight", "film_0.beta.bias",
        "conv_1.0.weight", "conv_1.0.bias",
        "film_1.gamma.weight", "film_1.gamma.bias", "film_1.beta.weight", "film_1.beta.bias",
        "pick.index",
    ]  # fmt: skip
    reference = FilmByHand()
    state = {key.replace("pick_index", "pick.index"): value for key, value in reference.state_dict().items()}
    model.load_state_dict(state)
    image, gyro = torch.randn(2, 3, 10, 10), torch.randn(2, 2)
    assert torch.allclose(model(image, gyro), reference(image, gyro))


def run(modules: dict[str, Any], calls: dict[str, Any], output: Any, *inputs: torch.Tensor) -> Any:
    names = [f"x{index}" for index in range(len(inputs))]
    document = {"modules": modules, "graph": {"input": names, "modules": calls, "output": output}}
    return spec.loads(document)(*inputs)


def test_get_takes_an_item_of_a_modules_tuple() -> None:
    lstm = {"LSTM": {"input_size": 4, "hidden_size": 3, "batch_first": True}}
    torch.manual_seed(0)
    document = {
        "modules": {"rnn": lstm, "out": {"Get": {"key": 0}}, "last": {"Narrow": {"dim": 1, "start": -1, "length": 1}}},
        "graph": {"input": "x", "modules": {"rnn": ["x"], "out": ["rnn"], "last": ["out"]}, "output": "last"},
    }
    model = spec.loads(document)
    x = torch.randn(2, 5, 4)
    expected = model.rnn(x)[0][:, -1:]
    assert torch.equal(model(x), expected)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ({"Reduce": {"name": "sum", "dim": 1, "keepdim": True}}, lambda x: x.sum(1, keepdim=True)),
        ({"Reduce": {"name": "mean", "dim": [1, 2]}}, lambda x: x.mean([1, 2])),
        ({"TorchFn": {"name": "flatten", "start_dim": 1}}, lambda x: torch.flatten(x, start_dim=1)),
        ({"Narrow": {"dim": 2, "start": 1, "length": 2}}, lambda x: x.narrow(2, 1, 2)),
        ({"IndexSelect": {"dim": 2, "index": [3, 0]}}, lambda x: x[:, :, [3, 0]]),
    ],
)
def test_a_one_input_module_computes_what_torch_does(module: dict[str, Any], expected: Any) -> None:
    x = torch.randn(2, 3, 4)
    assert torch.equal(run({"m": module}, {"m": ["x0"]}, "m", x), expected(x))


def test_the_forks_give_a_tuple_that_gets_pick_from() -> None:
    x = torch.randn(2, 7)
    modules = {
        "fork": {"ForkSplit": {"split_size_or_sections": [3, 4]}},
        "a": {"Get": {"key": 0}},
        "b": {"Get": {"key": 1}},
    }
    a, b = run(modules, {"fork": ["x0"], "a": ["fork"], "b": ["fork"]}, ["a", "b"], x)
    assert torch.equal(a, x[:, :3])
    assert torch.equal(b, x[:, 3:])
    modules["fork"] = {"ForkChunk": None}
    a, b = run(modules, {"fork": ["x0"], "a": ["fork"], "b": ["fork"]}, ["a", "b"], torch.randn(2, 6))
    assert a.shape == b.shape == (2, 3)


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        ({"MergeConcat": None}, lambda a, b: torch.cat([a, b], 1)),
        ({"MergeStack": None}, lambda a, b: torch.stack([a, b], 1)),
        ({"MergeSum": None}, lambda a, b: a + b),
        ({"MergeProd": {"dim": 1}}, lambda a, b: a * b),
        ({"MergeMean": None}, lambda a, b: torch.stack([a, b], 1).mean(1)),
    ],
)
def test_a_merge_takes_the_nested_list_in_order(merge: dict[str, Any], expected: Any) -> None:
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    got = run({"merge": merge}, {"merge": [["x0", "x1"]]}, "merge", a, b)
    assert torch.allclose(got, expected(a, b))


def test_dot_and_bmm_take_two_values() -> None:
    a, b = torch.randn(2, 3, 5), torch.randn(3, 5)
    assert torch.allclose(
        run({"dot": {"MergeDot": None}}, {"dot": ["x0", "x1"]}, "dot", a, b), torch.linalg.vecdot(a, b)
    )
    m, n = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    assert torch.allclose(run({"bmm": {"MergeBMM": None}}, {"bmm": ["x0", "x1"]}, "bmm", m, n), torch.bmm(m, n))
