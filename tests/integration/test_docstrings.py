"""Every public class, function and method of fluxion carries a docstring with a runnable example.

The examples themselves run through pytest's doctest collection of ``src/``.
"""

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import torch

import fluxion


def public_objects() -> Iterator[tuple[str, object]]:
    for info in pkgutil.walk_packages(fluxion.__path__, prefix="fluxion."):
        module = importlib.import_module(info.name)
        yield info.name, module
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != info.name:
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                yield f"{info.name}.{name}", value
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if attribute.startswith("_") or hasattr(torch.nn.Module, attribute):
                        continue  # overrides of torch's own methods are documented by torch
                    function = member.fget if isinstance(member, property) else member
                    if inspect.isfunction(function) or isinstance(member, property):
                        yield f"{info.name}.{name}.{attribute}", function


def test_every_public_object_has_a_runnable_example() -> None:
    missing = [name for name, value in public_objects() if ">>>" not in (inspect.getdoc(value) or "")]
    assert missing == []
