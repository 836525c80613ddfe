"""Fine-tune a GPT-2 with LoRA on two processes: shard, load, train, save, consolidate.

    torchrun --standalone --nproc_per_node 2 examples/distributed.py [folder] [--from-transformers]

The same script runs on CPUs (the gloo backend) and on GPUs (nccl, one GPU per process). Rank 0
first writes a checkpoint to start from: a small GPT-2 (examples/gpt2.jsonnet; with
--from-transformers, Hugging Face's GPT2LMHeadModel saved with save_pretrained) and a fresh LoRA
for the attention projections. Then every rank builds the fluxion GPT-2 on ``meta`` (no memory),
puts the LoRA in, shards every transformer block with FSDP2 and loads the base weights, each rank
reading only the blocks of the file that its shards hold. A few steps train the LoRA alone; the
model is saved sharded (each rank writes its pieces) and rank 0 consolidates the pieces into one
safetensors file, which a plain model in one process loads, with the same logits.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

import fluxion.layers as fl
from fluxion import distributed, spec, weights
from fluxion.adapters import lora
from fluxion.weights import KeyMapping, WeightsWarning

EXAMPLES = Path(__file__).resolve().parent
SPEC = EXAMPLES / "gpt2.jsonnet"
SIZE = {"depth": 2, "width": 64, "heads": 4, "vocab": 512, "positions": 32, "dropout": 0.0}
LORA_TARGETS = "*.attn.projections.*"  # query, key and value of every block


def log(message: str) -> None:
    if distributed.rank() == 0:
        print(message, flush=True)


def write_base(folder: Path, sample: torch.Tensor) -> torch.Tensor:
    """Rank 0: a small GPT-2 saved with fluxion.weights; returns its logits on ``sample``."""
    model = spec.load(SPEC, tla=SIZE)
    for parameter in model.parameters():  # GPT-2's initialisation (the norms keep 1 and 0)
        if parameter.dim() > 1:
            torch.nn.init.normal_(parameter, std=0.02)
    folder.mkdir(exist_ok=True)
    weights.save(model, folder / "model.safetensors")
    with torch.no_grad():
        return model.eval()(sample)


def write_base_from_transformers(folder: Path, sample: torch.Tensor) -> torch.Tensor:
    """Rank 0: Hugging Face's GPT2LMHeadModel of the same size, in its own layout; returns its logits."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    config = transformers.GPT2Config(
        n_layer=SIZE["depth"],
        n_embd=SIZE["width"],
        n_head=SIZE["heads"],
        vocab_size=SIZE["vocab"],
        n_positions=SIZE["positions"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)  # model.safetensors and config.json
    with torch.no_grad():
        return model(sample, use_cache=False).logits


def write_fresh_lora(path: Path) -> None:
    """Rank 0: an untrained LoRA for the attention projections, the same for every rank to start from."""
    model = spec.load(SPEC, tla=SIZE)  # not on meta: lora.inject draws the LoRA's starting values
    lora.inject(model, rank=4, alpha=8.0, targets=LORA_TARGETS)
    lora.save(model, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="where to write (default: a new temporary folder)")
    parser.add_argument("--steps", type=int, default=5, help="training steps (default 5)")
    parser.add_argument(
        "--from-transformers", action="store_true", help="start from a Hugging Face GPT-2 (needs transformers)"
    )
    args = parser.parse_args()

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if on_gpu else "gloo")
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    log(f"{distributed.world_size()} ranks, backend {dist.get_backend()}")

    names = [str(args.folder or tempfile.mkdtemp(prefix="fluxion-distributed-"))]
    dist.broadcast_object_list(names, src=0)  # every rank works in rank 0's folder
    folder = Path(names[0])
    sample = torch.randint(SIZE["vocab"], (2, 16), generator=torch.Generator().manual_seed(0))
    expected = torch.empty(0)
    if distributed.rank() == 0:
        torch.manual_seed(0)
        folder.mkdir(parents=True, exist_ok=True)
        write = write_base_from_transformers if args.from_transformers else write_base
        expected = write(folder / "base", sample)
        write_fresh_lora(folder / "adapter.safetensors")
        log(f"rank 0 wrote the start: {folder / 'base'} and a fresh LoRA, {folder / 'adapter.safetensors'}")
    dist.barrier()

    # Every rank: the tree on meta, the LoRA in (before sharding), then the shards.
    model = spec.load(SPEC, tla=SIZE, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)  # "still on meta": the base weights come next
        lora.load(model, folder / "adapter.safetensors")  # small: every rank reads all of it
    sharding = distributed.shard(model, fl.Graph)  # each transformer block is a Graph
    log(sharding.describe())
    mapping = KeyMapping.read(EXAMPLES / "gpt2.mapping.json") if args.from_transformers else None
    # The base checkpoint knows no LoRA: its keys reach the layers the LoRAs wrap (looked through).
    result = distributed.load(model, folder / "base", mapping=mapping)
    parameters = list(model.parameters())  # DTensors now: each rank holds its part of each
    held = sum(parameter.to_local().numel() for parameter in parameters)
    total = sum(parameter.numel() for parameter in parameters)
    log(f"loaded {len(result.loaded)} tensors; rank 0 holds {held:,} of the {total:,} weights")

    model.eval()
    with torch.no_grad():
        logits = model(sample.to(device)).cpu()  # every rank runs the forward (FSDP gathers each block)
    if distributed.rank() == 0:
        log(f"the sharded model computes the starting model's logits: {torch.allclose(logits, expected, atol=1e-5)}")

    # Training: the LoRA alone, on random tokens (each rank its own batch; FSDP averages gradients).
    model.train()
    optimizer = torch.optim.AdamW(lora.trainable_parameters(model), lr=1e-2)
    generator = torch.Generator().manual_seed(1 + distributed.rank())
    tokens = torch.randint(SIZE["vocab"], (4, SIZE["positions"]), generator=generator).to(device)
    for step in range(1, args.steps + 1):
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        log(f"step {step}: loss {loss.item():.4f}")

    # Saved sharded (each rank writes its pieces), then joined into one file for one process.
    distributed.save(model, folder / "checkpoint")
    plain = distributed.unshard(model).eval()  # every rank takes part; whole tensors on the CPU
    if distributed.rank() == 0:
        log(f"saved {folder / 'checkpoint'}: {', '.join(sorted(os.listdir(folder / 'checkpoint')))}")
        distributed.consolidate(folder / "checkpoint", folder / "model.safetensors")
        fresh = spec.load(SPEC, tla=SIZE)
        lora.load(fresh, folder / "adapter.safetensors")  # the same tree: the base and its LoRA
        weights.load(fresh, folder / "model.safetensors")
        with torch.no_grad():
            adapted = plain(sample)
            same = torch.equal(fresh.eval()(sample), adapted)
            log(f"consolidated into {folder / 'model.safetensors'}; loaded in one process: same logits: {same}")
            lora.merge(plain)  # the unsharded copy is a plain tree: surgery works on it
            close = torch.allclose(plain(sample), adapted, atol=1e-5)
        weights.save(plain, folder / "merged.safetensors")
        log(f"merged the LoRA into the unsharded copy, same logits: {close}; saved {folder / 'merged.safetensors'}")
    dist.barrier()  # no rank leaves before rank 0 is done (gloo may abort at exit otherwise)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
