"""Titles and key arguments: what a diagram's boxes say about each node."""

import torch

import fluxion.layers as fl
from fluxion.inspect.labels import key_arguments, title
from fluxion.tree.display import set_display_name


def test_title_shows_a_name_only_when_it_is_not_the_automatic_one() -> None:
    assert title("", fl.ReLU()) == "ReLU"
    assert title("ReLU", fl.ReLU()) == "ReLU"
    assert title("ReLU_3", fl.ReLU()) == "ReLU"
    assert title("act", fl.ReLU()) == "act: ReLU"
    assert title("Tanh", fl.ReLU()) == "Tanh: ReLU"


def test_arguments_at_their_defaults_are_dropped_others_kept() -> None:
    assert key_arguments(fl.Conv2d(3, 8, 3, stride=1)) == "3, 8, kernel_size=3"
    assert key_arguments(fl.Conv2d(3, 8, kernel_size=(3, 5), stride=2)) == "3, 8, kernel_size=(3, 5), stride=2"
    assert key_arguments(fl.LayerNorm(8, eps=1e-3)) == "(8,), eps=0.001"
    assert key_arguments(fl.Linear(4, 2, bias=False)) == "in_features=4, out_features=2, bias=False"


def test_defaults_come_from_the_torch_classes_too() -> None:
    assert key_arguments(torch.nn.Conv2d(3, 8, 3, stride=(1, 1))) == "3, 8, kernel_size=3"
    assert key_arguments(torch.nn.MaxPool2d(2)) == "kernel_size=2, stride=2"


def test_a_module_without_arguments_or_a_signature_gives_empty_text() -> None:
    class Plain(torch.nn.Module):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__()

    assert key_arguments(fl.ReLU()) == ""
    assert key_arguments(Plain(1, a=2)) == ""


def test_a_display_name_replaces_the_class_in_the_title() -> None:
    block = fl.Chain(fl.ReLU())
    set_display_name(block, "ResBlock")
    assert title("0", block) == "0: ResBlock"
    assert title("", block) == "ResBlock"
    assert title("Chain_2", block) == "ResBlock"  # an automatic name says nothing more
    assert title("ResBlock", block) == "ResBlock"
