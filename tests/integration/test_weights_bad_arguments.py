"""Bad arguments to the weights API get a WeightsError that says what is wrong, and change nothing."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion.weights import KeyMapping, Rule, WeightsError, convert, load, save
from tests.weights.helpers import same_state, small_model, state_snapshot


def state() -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in small_model().state_dict().items()}


CASES: list[tuple[str, Callable[[fl.Chain, Path], object], str]] = [
    ("unknown device", lambda m, _: load(m, state(), device="nonsense"), "device 'nonsense' cannot be used here"),
    ("string dtype", lambda m, _: load(m, state(), dtype="float16"), "dtype must be a floating-point torch.dtype"),
    ("integer dtype", lambda m, _: load(m, state(), dtype=torch.int8), "dtype must be a floating-point torch.dtype"),
    ("unknown group", lambda m, _: load(m, state(), mapping=[("^(a)", r"\g<nope>")]), "unknown group name 'nope'"),
    ("missing group", lambda m, _: load(m, state(), mapping=[("^(a)", r"\2")]), "invalid group reference 2"),
    ("replacement type", lambda m, _: load(m, state(), mapping=[("^a", 5)]), "replace must be a string"),
    ("mapping type", lambda m, _: load(m, state(), mapping=5), "mapping must be a KeyMapping"),
    ("bytes path", lambda m, p: load(m, bytes(p / "x.safetensors")), "a checkpoint is a path"),
    ("integer keys", lambda m, _: load(m, {0: torch.zeros(1)}), "keys must be strings, got 0"),
    ("empty prefix", lambda m, _: load(m, state(), prefix="."), "prefix '.' is not an address"),
    ("long file name", lambda m, p: save(m, p / ("x" * 300 + ".safetensors")), "File name too long"),
    ("reserved metadata", lambda m, p: save(m, p / "m.st", metadata={"format": "np"}), "'format' is reserved"),
    ("write mapping", lambda m, p: KeyMapping().write(p / "no" / "m.json"), "/no' does not exist"),
    ("bad regex", lambda m, _: Rule("(", "x"), "is not a valid regex"),
    ("integer prefix", lambda m, _: load(m, state(), prefix=5), "prefix must be an address (a string), got 5"),
    ("string strict", lambda m, _: load(m, state(), strict="no"), "strict must be True or False, got 'no'"),
    ("number progress", lambda m, _: load(m, state(), progress=1), "progress must be True, False or None"),
    ("model not a module", lambda m, _: load(state(), state()), "load fills a torch module; got dict"),
    ("list metadata", lambda m, p: save(m, p / "m.st", metadata=["a"]), "metadata must be a dict of strings"),
    ("integer path", lambda m, _: save(m, 5), "save writes to a file path (a str or a Path), got int"),
    ("complex128", lambda m, p: save({"c": torch.zeros(1, dtype=torch.complex128)}, p / "c.st"), "no dtype for"),
    ("sparse save", lambda m, p: save({"s": torch.eye(2).to_sparse()}, p / "s.st"), "'s': it is a sparse tensor"),
    ("mapping path", lambda m, _: KeyMapping().write(5), "KeyMapping.write takes a file path"),
    ("read mapping path", lambda m, _: KeyMapping.read(None), "KeyMapping.read takes a file path"),
    ("rules not a list", lambda m, _: KeyMapping(5), "rules must be a list of rules, got 5"),  # pyright: ignore[reportArgumentType]
    ("rename not a dict", lambda m, _: KeyMapping(rename=5), "rename must be a dict of keys"),  # pyright: ignore[reportArgumentType]
    ("rename to a number", lambda m, _: KeyMapping(rename={"a": 5}), "rename must be a dict of keys"),  # pyright: ignore[reportArgumentType]
    ("function not callable", lambda m, _: KeyMapping(function=5), "function must be callable"),  # pyright: ignore[reportArgumentType]
    ("function returns a number", lambda m, _: load(m, state(), mapping=len), "it must return a key or None"),  # pyright: ignore[reportArgumentType]
    ("function fails", lambda m, _: load(m, state(), mapping=lambda key: {}[key]), "the mapping function failed on"),
    ("split_dim text", lambda m, _: Rule("a", ("b", "c"), split_dim="x"), "split_dim an integer"),  # pyright: ignore[reportArgumentType]
    ("transpose text", lambda m, _: Rule("a", "b", transpose="yes"), "transpose must be True or False"),  # pyright: ignore[reportArgumentType]
    ("convert a dict", lambda m, _: convert(state(), m), "convert's source must be a torch module, got dict"),
    ("text tolerance", lambda m, _: convert(m, small_model(), atol="0"), "atol must be a finite number"),
    ("nan tolerance", lambda m, _: convert(m, small_model(), rtol=float("nan")), "rtol must be a finite number"),
]


@pytest.mark.parametrize(("case", "call", "expected"), CASES, ids=[case[0] for case in CASES])
def test_bad_arguments_raise_weights_errors(
    case: str, call: Callable[[fl.Chain, Path], object], expected: str, tmp_path: Path
) -> None:
    model = small_model()
    before = state_snapshot(model)
    with pytest.raises(WeightsError) as caught:
        call(model, tmp_path)
    assert expected in str(caught.value), case
    assert same_state(model, before)
    assert not [path for path in tmp_path.iterdir() if path.suffix in (".tmp", ".partial")]


def test_lazy_modules_are_refused_until_initialised(tmp_path: Path) -> None:
    lazy = fl.Chain(torch.nn.LazyLinear(3))
    with pytest.raises(WeightsError, match=r"LazyLinear\.weight is not initialised yet"):
        save(lazy, tmp_path / "lazy.safetensors")
    with pytest.raises(WeightsError, match="not initialised yet"):
        load(lazy, {"LazyLinear.weight": torch.zeros(3, 2), "LazyLinear.bias": torch.zeros(3)})
