"""fluxion.nas.search: the search driver.

A run stopped, saved and resumed into a fresh model goes on bit for bit as the uninterrupted run;
one step is DARTS's first-order step written out by hand; the weight step never moves the alphas,
and optimizers holding the other set are refused by address; batches depend only on (seed,
epoch); the learning rate follows DARTS's cosine; checkpoints are whole folders or nothing, and a
checkpoint of another model or another search is refused with the model left as it was.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

import fluxion.layers as fl
from fluxion import nas
from fluxion.errors import NasError
from fluxion.nas.search import Batches, Search, StepRecord
from fluxion.nas.strategies import Batch, Darts, Gumbel, RandomSampling, StepContext, Strategy

FEATURES, CLASSES = 6, 3


def supernet(width: int = 8, *, extra: bool = False) -> fl.Chain:
    """Two choices over linear layers, a batch norm (buffers) and dropout (torch's random numbers)."""
    candidates: dict[str, torch.nn.Module] = {
        "linear": fl.Linear(width, width),
        "mlp": fl.Chain(fl.Linear(width, width), fl.ReLU()),
        "skip": fl.Identity(),
    }
    if extra:
        candidates["tanh"] = fl.Tanh()
    return fl.Chain(
        stem=fl.Linear(FEATURES, width),
        norm=fl.BatchNorm1d(width),
        edge_1=nas.Choice(**candidates),
        drop=fl.Dropout(0.1),
        edge_2=nas.Choice(linear=fl.Linear(width, width), relu=fl.ReLU()),
        head=fl.Linear(width, CLASSES),
    )


def data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, FEATURES, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    return inputs, targets


TRAIN, VALID = data(20, 1), data(12, 2)


def build(strategy: Strategy | None = None, *, model_seed: int = 0, **options: Any) -> Search:
    torch.manual_seed(model_seed)
    arguments: dict[str, Any] = {"epochs": 3, "batch_size": 8, "seed": 5, "strategy": strategy, "progress": False}
    arguments.update(options)
    return Search(supernet(), TRAIN, VALID, **arguments)


def tensors_of(search: Search) -> dict[str, torch.Tensor]:
    """Everything a run changes that must match: model state and both optimizers' tensors."""
    found = {f"model.{key}": value for key, value in search.model.state_dict().items()}
    for role, optimizer in (("weight", search.weight_optimizer), ("arch", search.arch_optimizer)):
        if optimizer is None:
            continue
        for index, entries in optimizer.state_dict()["state"].items():
            for name, value in entries.items():
                if isinstance(value, torch.Tensor):
                    found[f"{role}.{index}.{name}"] = value
    return found


def assert_same(one: Search, other: Search) -> None:
    first, second = tensors_of(one), tensors_of(other)
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"tensors differ: {different}"
    assert one.history == other.history
    assert one.steps_done == other.steps_done


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "darts": Darts,
    "gumbel": lambda: Gumbel(tau_max=5.0, tau_min=0.5),
    "random": RandomSampling,
    "darts_second_order": lambda: Darts(order=2),
}


@pytest.mark.parametrize(
    ("name", "stopped_after"),
    [("darts", 3), ("darts", 4), ("gumbel", 3), ("gumbel", 4), ("random", 4), ("darts_second_order", 4)],
)
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path: Path, name: str, stopped_after: int) -> None:
    """Stopped at an epoch's end (3) or inside an epoch (4) of 3 steps."""
    whole = build(STRATEGIES[name]())
    whole.run()
    assert whole.total_steps == 9

    first = build(STRATEGIES[name]())
    first.run(stopped_after)
    first.save(tmp_path / "checkpoint")

    torch.manual_seed(1234)  # another random state, and a fresh model with other weights
    resumed = build(STRATEGIES[name](), model_seed=99)
    resumed.resume(tmp_path / "checkpoint")
    assert resumed.steps_done == stopped_after
    assert resumed.history == whole.history[:stopped_after]
    resumed.run()

    assert_same(whole, resumed)
    if name == "gumbel":
        assert resumed.model.edge_1.tau == whole.model.edge_1.tau == 0.5
    if name != "random":
        assert not torch.equal(whole.model.edge_1.alphas, first.model.edge_1.alphas)


def test_one_step_is_dartss_first_order_step_written_out() -> None:
    search = build()
    torch.manual_seed(0)
    reference = supernet()
    reference.train()
    arch_optimizer = torch.optim.Adam(nas.arch_parameters(reference), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    weight_optimizer = torch.optim.SGD(nas.weights(reference), lr=0.025, momentum=0.9, weight_decay=3e-4)
    valid = search.valid_batches.batch(0, 0)
    train = search.train_batches.batch(0, 0)
    state = torch.get_rng_state()

    record = search.step()

    torch.set_rng_state(state)  # the same dropout masks
    arch_optimizer.zero_grad()
    valid_loss = functional.cross_entropy(reference(valid[0]), valid[1])
    valid_loss.backward()
    arch_optimizer.step()
    weight_optimizer.zero_grad()
    train_loss = functional.cross_entropy(reference(train[0]), train[1])
    train_loss.backward()
    torch.nn.utils.clip_grad_norm_(nas.weights(reference), 5.0)
    weight_optimizer.step()

    assert record.valid_loss == pytest.approx(valid_loss.item(), abs=1e-6)
    assert record.train_loss == pytest.approx(train_loss.item(), abs=1e-6)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(search.model.state_dict()[key], value, rtol=0, atol=1e-6)


class ValidationLossOnly(Strategy):
    """Computes the validation loss but takes no architecture step."""

    name = "validation_only"

    def architecture_step(self, context: StepContext, train: Batch, valid: Batch) -> torch.Tensor:
        with torch.no_grad():
            return context.loss(context.model(valid[0]), valid[1])


def test_the_weight_step_never_moves_the_alphas_though_its_loss_depends_on_them() -> None:
    search = build(ValidationLossOnly())
    alphas = [alpha.detach().clone() for alpha in nas.arch_parameters(search.model)]
    weights = [weight.detach().clone() for weight in nas.weights(search.model)]
    search.run(2)
    train = search.train_batches.batch(0, 0)
    loss = functional.cross_entropy(search.model(train[0]), train[1])
    assert all(gradient is not None for gradient in torch.autograd.grad(loss, nas.arch_parameters(search.model)))
    for before, after in zip(alphas, nas.arch_parameters(search.model), strict=True):
        assert torch.equal(before, after)
        assert after.grad is None  # the weight step neither reads nor writes the alphas' gradients
    assert any(not torch.equal(before, after) for before, after in zip(weights, nas.weights(search.model), strict=True))


def test_optimizers_holding_the_other_set_are_refused_by_address() -> None:
    torch.manual_seed(0)
    model = supernet()
    with pytest.raises(NasError, match=r"weight optimizer holds the architecture parameter 'edge_1\.alphas'"):
        Search(model, TRAIN, VALID, epochs=1, weight_optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(NasError, match=r"architecture optimizer holds the weight 'stem\.weight'"):
        Search(model, TRAIN, VALID, epochs=1, arch_optimizer=torch.optim.Adam(model.parameters()))
    stranger = torch.nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(NasError, match=r"tensor of shape \(2, 2\) that is not a parameter of the model"):
        Search(model, TRAIN, VALID, epochs=1, weight_optimizer=torch.optim.SGD([stranger], lr=0.1))
    with pytest.raises(NasError, match=r"must be a torch\.optim\.Optimizer"):
        Search(model, TRAIN, VALID, epochs=1, weight_optimizer="sgd")  # type: ignore[arg-type]


def test_optimizers_of_ones_own_are_used_saved_and_resumed(tmp_path: Path) -> None:
    def own(**options: Any) -> Search:
        torch.manual_seed(0)
        model = supernet()
        return Search(
            model,
            TRAIN,
            VALID,
            epochs=2,
            batch_size=8,
            progress=False,
            weight_optimizer=torch.optim.AdamW(nas.weights(model), lr=1e-2),
            arch_optimizer=torch.optim.SGD(nas.arch_parameters(model), lr=0.1, momentum=0.5),
            **options,
        )

    whole = own()
    whole.run()
    first = own()
    first.run(2)
    first.save(tmp_path / "checkpoint")
    resumed = own()
    resumed.resume(tmp_path / "checkpoint")
    resumed.run()
    assert_same(whole, resumed)


def test_the_learning_rate_follows_dartss_cosine_over_the_epochs() -> None:
    search = build(epochs=4, min_lr=0.001)
    search.run()
    per_epoch = {record.epoch: record.lr for record in search.history}
    expected = [0.001 + (0.025 - 0.001) * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    assert list(per_epoch.values()) == pytest.approx(expected, rel=1e-9)
    assert search.weight_optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    flat = build(epochs=2, cosine=False)
    flat.run()
    assert {record.lr for record in flat.history} == {0.025}


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 40), batch_size=st.integers(1, 16), seed=st.integers(0, 2**31), epoch=st.integers(0, 1000))
def test_each_epoch_covers_the_data_once_in_an_order_of_its_seed_and_epoch(
    size: int, batch_size: int, seed: int, epoch: int
) -> None:
    split = (torch.arange(size, dtype=torch.float32).unsqueeze(1), torch.arange(size))
    batches = Batches("train", split, batch_size=batch_size, seed=seed)
    later = [batches.batch(epoch, index)[1] for index in reversed(range(len(batches)))][::-1]
    batches.batch(epoch + 1, 0)  # drawing another epoch in between changes nothing
    again = [
        Batches("train", split, batch_size=batch_size, seed=seed).batch(epoch, index)[1]
        for index in range(len(batches))
    ]
    assert all(torch.equal(one, other) for one, other in zip(later, again, strict=True))
    assert sorted(torch.cat(later).tolist()) == list(range(size))
    assert len(batches) == math.ceil(size / batch_size)


def test_datasets_give_the_same_run_as_tensors() -> None:
    from_tensors = build(epochs=1)
    from_tensors.run()
    torch.manual_seed(0)
    datasets = Search(
        supernet(),
        torch.utils.data.TensorDataset(*TRAIN),
        torch.utils.data.TensorDataset(*VALID),
        epochs=1,
        batch_size=8,
        seed=5,
        progress=False,
    )
    datasets.run()
    assert_same(from_tensors, datasets)


def test_the_progress_line_shows_the_step_losses_and_the_description_when_forced_on() -> None:
    stream = io.StringIO()
    search = build(epochs=1, stream=stream, progress=True, describe=lambda model: "normal: relu(0)")
    search.run()
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert last.startswith("search step 3/3 epoch 1/1 train ")
    assert " valid " in last
    assert "| normal: relu(0)" in last
    quiet = io.StringIO()
    build(epochs=1, stream=quiet).run()  # progress=False
    assert quiet.getvalue() == ""
    off_terminal = io.StringIO()
    build(epochs=1, stream=off_terminal, progress=None).run()
    assert off_terminal.getvalue() == ""


def test_the_default_description_is_the_genotype_and_nothing_for_other_supernets() -> None:
    stream = io.StringIO()
    build(epochs=1, stream=stream, progress=True, strategy=Gumbel()).run()
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert " tau 0.1" in last
    assert "|" not in last  # this supernet has no DARTS cells: genotype_of gives None


def test_step_records_count_steps_from_one_and_epochs_from_zero() -> None:
    search = build(epochs=2)
    records = search.run()
    assert [(record.step, record.epoch) for record in records] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1)]
    assert all(isinstance(record, StepRecord) and record.temperature is None for record in records)
    assert search.done
    with pytest.raises(NasError, match="the search is over: all 6 steps were taken"):
        search.run()


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "valid", "message"),
    [
        ((torch.randn(10, FEATURES), torch.zeros(9, dtype=torch.long)), VALID, "train data: 10 inputs but 9 targets"),
        (
            TRAIN,
            (torch.randn(4, FEATURES + 1), torch.zeros(4, dtype=torch.long)),
            r"shape of one input: \(6,\) and \(7,\)",
        ),
        (TRAIN, (torch.randn(4, FEATURES), torch.zeros(4, 2)), r"shape of one target: \(\) and \(2,\)"),
        (TRAIN, (torch.randn(0, FEATURES), torch.zeros(0, dtype=torch.long)), "valid data is empty"),
        (
            (torch.randn(4, FEATURES),),
            VALID,
            r"train data: expected a pair of tensors \(inputs, targets\), got \(Tensor\)",
        ),
        ([torch.randn(4, FEATURES), torch.zeros(4)], VALID, "train data: expected .* got list"),
        ((torch.tensor(1.0), torch.tensor(1)), VALID, "need a first \\(sample\\) dimension"),
    ],
)
def test_wrong_data_is_refused_naming_the_split(train: Any, valid: Any, message: str) -> None:
    torch.manual_seed(0)
    with pytest.raises(NasError, match=message):
        Search(supernet(), train, valid, epochs=1)


def test_dataset_items_that_are_not_pairs_are_refused() -> None:
    class Singles(torch.utils.data.Dataset[torch.Tensor]):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.zeros(FEATURES)

    with pytest.raises(NasError, match="train data: item 0 is not an \\(input, target\\) pair: a Tensor"):
        Search(supernet(), Singles(), VALID, epochs=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "epochs is a whole number above 0, got 0"),
        ({"epochs": 1, "batch_size": 0}, "batch_size is a whole number above 0, got 0"),
        ({"epochs": 1, "seed": 1.5}, "seed must be an integer"),
        ({"epochs": 1, "grad_clip": 0.0}, "grad_clip is a norm above 0"),
    ],
)
def test_zero_steps_and_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(NasError, match=message):
        Search(supernet(), TRAIN, VALID, **options)
    with pytest.raises(NasError, match="steps is a whole number above 0, got 0"):
        build().run(0)


@pytest.mark.parametrize("strategy", [Darts(), Gumbel()], ids=["darts", "gumbel"])
def test_a_model_without_architecture_parameters_is_refused_by_searching_strategies(strategy: Strategy) -> None:
    model = fl.Chain(fl.Linear(FEATURES, CLASSES))
    with pytest.raises(
        NasError, match=f"the {strategy.name} strategy searches architecture parameters, but the model has none"
    ):
        Search(model, TRAIN, VALID, epochs=1, strategy=strategy)
    Search(model, TRAIN, VALID, epochs=1, strategy=RandomSampling(), progress=False).run()  # weights only: fine


# -- checkpoints ----------------------------------------------------------------------------------


def test_save_writes_a_whole_folder_and_replaces_an_older_checkpoint(tmp_path: Path) -> None:
    search = build()
    search.run(2)
    folder = tmp_path / "checkpoint"
    search.save(folder)
    search.run(1)
    search.save(folder)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint"]  # no temporary folders left
    state = json.loads((folder / "search.json").read_text())
    assert state["steps_done"] == 3
    assert state["settings"]["strategy"] == {"name": "darts", "order": 1}


def test_a_failed_save_leaves_the_older_checkpoint_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    search = build()
    search.run(1)
    folder = tmp_path / "checkpoint"
    search.save(folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise NasError("disk full")

    monkeypatch.setattr("fluxion.nas.search.write_text_atomically", broken)
    search.run(1)
    with pytest.raises(NasError, match="disk full"):
        search.save(folder)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint"]


def test_save_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(NasError, match="holds something else than a search checkpoint"):
        build().save(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    with pytest.raises(NasError, match="does not exist"):
        build().save(tmp_path / "missing" / "checkpoint")


@pytest.mark.parametrize("piece", ["model.safetensors", "search.json", "search.safetensors"])
def test_a_checkpoint_missing_a_piece_is_refused_naming_it(tmp_path: Path, piece: str) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")
    (tmp_path / "checkpoint" / piece).unlink()
    fresh = build()
    with pytest.raises(NasError, match=f"checkpoint '.*checkpoint' is missing {piece}"):
        fresh.resume(tmp_path / "checkpoint")
    assert fresh.steps_done == 0
    with pytest.raises(NasError, match="does not exist"):
        fresh.resume(tmp_path / "nowhere")


def test_a_checkpoint_with_a_tensor_missing_is_refused(tmp_path: Path) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")
    state_file = tmp_path / "checkpoint" / "search.json"
    state_file.write_text(state_file.read_text().replace('"rng.cpu"', '"rng.elsewhere"'))
    with pytest.raises(NasError, match=r"search\.safetensors has no tensor 'rng\.elsewhere'"):
        build().resume(tmp_path / "checkpoint")


def unchanged(search: Search) -> Callable[[], None]:
    """A check that the search's model and optimizers are as they are now."""
    before = {key: value.clone() for key, value in tensors_of(search).items()}
    steps, modes = search.steps_done, [choice.mode for _, choice in nas.choices(search.model)]

    def check() -> None:
        after = tensors_of(search)
        assert after.keys() == before.keys()
        assert all(torch.equal(before[key], after[key]) for key in before)
        assert search.steps_done == steps
        assert [choice.mode for _, choice in nas.choices(search.model)] == modes

    return check


def test_a_checkpoint_of_another_model_is_refused_naming_what_differs(tmp_path: Path) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")

    torch.manual_seed(0)
    wider = Search(supernet(width=10), TRAIN, VALID, epochs=3, batch_size=8, seed=5, progress=False)
    wider.run(1)
    check = unchanged(wider)
    with pytest.raises(
        NasError,
        match=r"belongs to another model: shapes differ: stem\.weight \(model \(10, 6\), checkpoint \(8, 6\)\)",
    ):
        wider.resume(tmp_path / "checkpoint")
    check()

    torch.manual_seed(0)
    more = Search(supernet(extra=True), TRAIN, VALID, epochs=3, batch_size=8, seed=5, progress=False)
    check = unchanged(more)
    with pytest.raises(
        NasError, match=r"belongs to another model: shapes differ: edge_1\.alphas \(model \(4,\), checkpoint \(3,\)\)"
    ):
        more.resume(tmp_path / "checkpoint")
    check()

    torch.manual_seed(0)
    other = Search(
        fl.Chain(fl.Linear(FEATURES, 8), head=fl.Linear(8, CLASSES), edge=nas.Choice(a=fl.ReLU(), b=fl.Tanh())),
        TRAIN,
        VALID,
        epochs=3,
        batch_size=8,
        seed=5,
        progress=False,
    )
    check = unchanged(other)
    with pytest.raises(
        NasError,
        match=r"not in the checkpoint: Linear\.weight, Linear\.bias, edge\.alphas; "
        r"not in the model: edge_1\.alphas, .* and 7 more",
    ):
        other.resume(tmp_path / "checkpoint")
    check()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 4}, "written by a search with batch_size=8, this one has batch_size=4"),
        ({"seed": 6}, "seed=5, this one has seed=6"),
        ({"strategy": Gumbel()}, "strategy={'name': 'darts', 'order': 1}, this one has strategy={'name': 'gumbel'"),
        ({"epochs": 5}, "epochs=3, this one has epochs=5"),
    ],
)
def test_a_checkpoint_of_another_search_is_refused_naming_the_setting(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")
    other = build(**options)
    check = unchanged(other)
    with pytest.raises(NasError, match=message):
        other.resume(tmp_path / "checkpoint")
    check()


def test_an_optimizer_over_other_parameters_is_refused_naming_them(tmp_path: Path) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")
    torch.manual_seed(0)
    model = supernet()
    reordered = list(reversed(nas.weights(model)))
    other = Search(
        model,
        TRAIN,
        VALID,
        epochs=3,
        batch_size=8,
        seed=5,
        progress=False,
        weight_optimizer=torch.optim.SGD(reordered, lr=0.025, momentum=0.9, weight_decay=3e-4),
    )
    check = unchanged(other)
    with pytest.raises(
        NasError,
        match=r"weight_optimizer holds other parameters: "
        r"parameter 0 is 'stem\.weight' in the checkpoint, 'head\.bias' here",
    ):
        other.resume(tmp_path / "checkpoint")
    check()


def test_a_checkpoint_whose_random_state_does_not_fit_torch_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    search = build()
    search.run(1)
    search.save(tmp_path / "checkpoint")
    tensors_file = tmp_path / "checkpoint" / "search.safetensors"
    with safetensors.safe_open(str(tensors_file), framework="pt") as handle:
        metadata: dict[str, str] = handle.metadata()
        saved = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    saved["rng.cpu"] = saved["rng.cpu"][:10].clone()
    safetensors.torch.save_file(saved, str(tensors_file), metadata=metadata)
    fresh = build()
    check = unchanged(fresh)
    with pytest.raises(NasError, match=r"random state has shape \(10,\)"):
        fresh.resume(tmp_path / "checkpoint")
    check()
