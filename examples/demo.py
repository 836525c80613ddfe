"""fluxion in one minute: define a model without writing forward, look at it, edit it, adapt it, run it."""

import torch

import fluxion.layers as fl
from fluxion.adapters import lora


class MLPBlock(fl.Chain):
    """Pre-norm feed-forward block with a skip connection."""

    def __init__(self, dim: int) -> None:
        super().__init__(fl.LayerNorm(dim), fl.Linear(dim, 4 * dim), fl.GeLU(), fl.Linear(4 * dim, dim))


class Classifier(fl.Chain):
    def __init__(self, dim: int, depth: int, classes: int) -> None:
        super().__init__(
            fl.Flatten(),
            fl.Linear(28 * 28, dim),
            *[fl.Residual(MLPBlock(dim)) for _ in range(depth)],
            head=fl.Linear(dim, classes),
        )


def main() -> None:
    torch.manual_seed(0)
    model = Classifier(dim=64, depth=3, classes=10)
    print("The model is a tree; every node has an address:\n")
    print(model)
    print("\naddresses of the second block's Linears:", [m.address for m in model.Residual_2.layers(fl.Linear)])

    images = torch.randn(8, 1, 28, 28)
    before = model(images)

    print("\nSurgery: add dropout after every GeLU, and swap the last block's activation for SiLU.")
    for block in model.layers(MLPBlock):
        block.insert_after_type(fl.GeLU, fl.Dropout(0.1))
    model.replace("Residual_3.MLPBlock.GeLU", fl.SiLU())
    print(model.Residual_3)

    model.eval()
    after = model(images)
    print(f"\noutput shape {tuple(after.shape)}; changed by surgery: {not torch.allclose(before, after)}")

    print("\nLoRA on every Linear inside the blocks: only the adapters train, then they merge back in.")
    adapters = lora.inject(model, rank=4, targets="Residual_*")
    print(model.Residual_1)
    optimizer = torch.optim.SGD(lora.trainable_parameters(model), lr=0.1)
    labels = torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    adapted = model(images)
    lora.merge(model)
    model.requires_grad_(True)
    print(
        f"{len(adapters)} LoRAs trained and merged; largest output difference after merging: "
        f"{(model(images) - adapted).abs().max().item():.1e}"
    )

    print("\nA mistake is reported where it happens:")
    try:
        model.insert(1, fl.Linear(32, 64))
        model(images)
    except fl.ChainError as error:
        print(error)


if __name__ == "__main__":
    main()
