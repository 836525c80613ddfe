"""Architecture search on scikit-learn's digits: search DARTS's space, finalize it, train the result.

The 1,797 8x8 grayscale digit images that ship with scikit-learn (no download) are split once by
the seed: a fifth is held out for the test, and the rest is halved into the two splits DARTS
searches on (weights train on one, architecture parameters on the other). Then:

1. the supernet: ``examples/darts.jsonnet`` for 1-channel 8x8 images (reduction cells take 8x8
   to 4x4 to 2x2), its weights and architecture parameters counted apart;
2. the search: ``fluxion.nas.Search``, first-order DARTS, a progress line on a terminal and one
   line per epoch;
3. finalize: the genotype as JSON, and the discrete child that inherits the supernet's weights;
4. evaluation: the genotype's own network, built from the same spec (a few more channels) and
   trained from scratch on both search splits with ``fluxion.nas.evaluate``, then tested.

Everything lands in ``--out`` (a temporary folder by default): the finalized child (spec, weights,
genotype, address map), the evaluated network (spec and trained weights) and ``results.json``.

    .venv/bin/python examples/nas_digits.py            # a few minutes on 2 CPU cores
    .venv/bin/python examples/nas_digits.py --quick    # a tiny run, seconds (the tests run it)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import load_digits

from fluxion import nas, spec, weights

SPEC = Path(__file__).resolve().parent / "darts.jsonnet"
IMAGE = {"in_channels": 1, "image_size": 8, "classes": 10}

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Settings:
    """The sizes of a run: the supernet's, the search's, the evaluation network's and its training's."""

    channels: int  # the supernet's first cells' channels (doubled by each reduction cell)
    cells: int
    nodes: int  # intermediate nodes per cell
    search_epochs: int
    eval_channels: int
    eval_cells: int
    eval_epochs: int
    batch_size: int
    images: int | None  # use only this many images (None: all 1,797)


FULL = Settings(
    channels=8,
    cells=5,
    nodes=4,
    search_epochs=6,
    eval_channels=16,
    eval_cells=5,
    eval_epochs=10,
    batch_size=64,
    images=None,
)
QUICK = Settings(
    channels=4,
    cells=3,
    nodes=2,
    search_epochs=1,
    eval_channels=4,
    eval_cells=3,
    eval_epochs=1,
    batch_size=32,
    images=240,
)


def digits(seed: int, images: int | None) -> tuple[Split, Split, Split]:
    """Search-train, search-valid and test splits: images (N, 1, 8, 8) scaled to [0, 1], then
    normalised with the mean and deviation of the search splits; labels (N,)."""
    data = load_digits()
    pixels = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if images is not None:
        order = order[:images]
    test_size = len(order) // 5
    test, rest = order[:test_size], order[test_size:]
    train, valid = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    mean, std = pixels[rest].mean(), pixels[rest].std()
    pixels = (pixels - mean) / std
    return (pixels[train], labels[train]), (pixels[valid], labels[valid]), (pixels[test], labels[test])


def count(parameters: list[torch.nn.Parameter]) -> int:
    return sum(parameter.numel() for parameter in parameters)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Architecture search on scikit-learn's digits (DARTS, first order).")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), as the tests run it")
    parser.add_argument("--epochs", type=int, help="search epochs (default: 6, quick: 1)")
    parser.add_argument("--eval-epochs", type=int, help="evaluation epochs (default: 10, quick: 1)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the split, the weights and the batches")
    parser.add_argument("--out", type=Path, help="folder for the results (default: a new temporary folder)")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads (default: 1)")
    arguments = parser.parse_args(argv)
    settings = QUICK if arguments.quick else FULL
    if arguments.epochs is not None:
        settings = replace(settings, search_epochs=arguments.epochs)
    if arguments.eval_epochs is not None:
        settings = replace(settings, eval_epochs=arguments.eval_epochs)
    out: Path = arguments.out if arguments.out is not None else Path(tempfile.mkdtemp(prefix="nas_digits_"))
    out.mkdir(parents=True, exist_ok=True)
    seed: int = arguments.seed
    # The tensors are tiny (8x8 images, a few channels): on an idle machine 2 threads are no faster
    # than 1, and on a busy one they wait for each other (a --quick run took 5 times as long).
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()

    train, valid, test = digits(seed, settings.images)
    print(f"digits: {len(train[1])} search-train, {len(valid[1])} search-valid, {len(test[1])} test images (8x8)")

    # 1. The supernet: every edge of every cell a Choice of DARTS's eight operations.
    torch.manual_seed(seed)
    sizes = {"channels": settings.channels, "cells": settings.cells, "nodes": settings.nodes}
    supernet = spec.load(SPEC, tla={**IMAGE, **sizes})
    supernet_weights = count(nas.weights(supernet))
    alphas = nas.arch_parameters(supernet)
    print(
        f"supernet {sizes}: {supernet_weights:,} weights, {count(alphas):,} architecture parameters "
        f"({len(alphas)} alphas tensors, shared by the cells of each type)"
    )

    # 2. The search: first-order DARTS, an architecture step on search-valid, then a weight step on search-train.
    search = nas.Search(
        supernet,
        train=train,
        valid=valid,
        epochs=settings.search_epochs,
        batch_size=settings.batch_size,
        seed=seed,
        strategy=nas.Darts(order=1),
    )
    for epoch in range(settings.search_epochs):
        records = search.run(search.steps_per_epoch)
        train_loss = sum(record.train_loss for record in records) / len(records)
        valid_loss = sum(record.valid_loss for record in records) / len(records)
        print(
            f"search epoch {epoch + 1}/{settings.search_epochs}: train loss {train_loss:.3f}, "
            f"valid loss {valid_loss:.3f}, {time.perf_counter() - started:.0f} s"
        )

    # 3. Finalize: each edge keeps its best operation (never none), each node its two strongest edges.
    finalized = nas.finalize(supernet, rank="softmax")
    genotype = finalized.genotype
    assert genotype is not None  # darts.jsonnet's supernet has the layout genotypes are read from
    print("genotype:", json.dumps(genotype.to_json()))
    raw = nas.finalize(supernet, rank="raw").genotype
    same = raw is not None and raw.canonical() == genotype.canonical()
    print(f"ranking by raw alphas (Archai's rule) picks {'the same' if same else 'another'} genotype")
    inherited = count(nas.weights(finalized.model))
    print(f"the finalized child inherits {inherited:,} of the supernet's {supernet_weights:,} weights")
    finalized.save(out / "finalized", inputs={"image": ["B", 1, 8, 8]})

    # 4. Evaluation: the genotype's network from the same spec, trained from scratch on both search splits.
    torch.manual_seed(seed)
    network_sizes = {"channels": settings.eval_channels, "cells": settings.eval_cells}
    network = spec.load(SPEC, tla={**IMAGE, **network_sizes, "genotype": genotype.to_json()})
    both = (torch.cat([train[0], valid[0]]), torch.cat([train[1], valid[1]]))
    evaluation = nas.evaluate(
        network, both, test, epochs=settings.eval_epochs, batch_size=settings.batch_size, seed=seed, lr=0.05
    )
    print(f"evaluation network {network_sizes}: {evaluation.parameters:,} weights")
    for record in evaluation.history:
        print(
            f"evaluate epoch {record.epoch}/{settings.eval_epochs}: train loss {record.train_loss:.3f}, "
            f"test loss {record.test_loss:.3f}, test accuracy {record.test_accuracy:.2%}"
        )
    elapsed = time.perf_counter() - started
    print(f"test accuracy: {evaluation.test_accuracy:.2%} ({len(test[1])} images, chance 10%)")
    print(f"done in {elapsed:.0f} s")

    evaluated = out / "evaluated"
    evaluated.mkdir(exist_ok=True)
    spec.save(network, evaluated / "model.json", inputs={"image": ["B", 1, 8, 8]})
    weights.save(network, evaluated / "model.safetensors")
    results: dict[str, Any] = {
        "settings": asdict(settings),
        "seed": seed,
        "supernet_weights": supernet_weights,
        "architecture_parameters": count(alphas),
        "genotype": genotype.to_json(),
        "inherited_weights": inherited,
        "evaluation_weights": evaluation.parameters,
        "test_accuracy": evaluation.test_accuracy,
        "seconds": round(elapsed, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"results in {out}")
    return results


if __name__ == "__main__":
    main()
