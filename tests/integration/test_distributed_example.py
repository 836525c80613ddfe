"""examples/distributed.py on two gloo ranks, launched by torch's own launcher (torchrun): what it
prints, the files it writes (checked here, in one process), and docs/distributed.md showing its code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fluxion import spec, weights
from fluxion.adapters import lora

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "distributed.py"
PAGE = ROOT / "docs" / "distributed.md"
SIZE = {"depth": 2, "width": 64, "heads": 4, "vocab": 512, "positions": 32, "dropout": 0.0}
COMMAND = "torchrun --standalone --nproc_per_node 2 examples/distributed.py"


def launch(folder: Path, *options: str) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*launcher, str(EXAMPLE), str(folder), *options],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("distributed")
    return launch(folder), folder


def losses(output: str) -> list[float]:
    return [float(value) for value in re.findall(r"^step \d+: loss (\d+\.\d+)$", output, re.MULTILINE)]


def test_rank_0_reports_each_stage_once(run: tuple[str, Path]) -> None:
    output, folder = run
    lines = output.splitlines()
    assert lines[0] == "2 ranks, backend gloo"
    assert f"rank 0 wrote the start: {folder / 'base'} and a fresh LoRA, {folder / 'adapter.safetensors'}" in lines
    assert "wrapped 3 nodes with fully_shard: transformer.h.0, transformer.h.1, (root)" in lines
    assert "the sharded model computes the starting model's logits: True" in lines
    assert f"consolidated into {folder / 'model.safetensors'}; loaded in one process: same logits: True" in lines
    merged = f"merged the LoRA into the unsharded copy, same logits: True; saved {folder / 'merged.safetensors'}"
    assert merged in lines
    assert len(lines) == len(set(lines)), "a line printed twice: only rank 0 prints"
    trained = losses(output)
    assert len(trained) == 5
    assert trained[-1] < trained[0]


def test_rank_0_holds_its_half_of_the_weights(run: tuple[str, Path]) -> None:
    output, _ = run
    found = re.search(r"^loaded (\d+) tensors; rank 0 holds ([\d,]+) of the ([\d,]+) weights$", output, re.MULTILINE)
    assert found is not None, output
    loaded, held, total = (int(value.replace(",", "")) for value in found.groups())
    model = spec.load(ROOT / "examples" / "gpt2.jsonnet", tla=SIZE, device="meta")
    base = {id(parameter): parameter.numel() for parameter in model.parameters()}
    assert loaded == len(model.state_dict())  # every key, the tied head's too
    assert total == sum(base.values()) + 2 * 3 * 2 * 4 * SIZE["width"]  # + 2 blocks x 3 LoRAs x down, up (rank 4)
    assert held == total // 2  # every first dimension is even here: the ranks' parts are equal


def test_the_saved_folder_consolidates_into_a_file_a_plain_model_loads(run: tuple[str, Path]) -> None:
    _, folder = run
    assert sorted(path.name for path in (folder / "checkpoint").iterdir()) == [
        "fluxion.json",
        "shard-00001-model-00001-of-00001.safetensors",
        "shard-00002-model-00001-of-00001.safetensors",
    ]
    model = spec.load(ROOT / "examples" / "gpt2.jsonnet", tla=SIZE)
    lora.load(model, folder / "adapter.safetensors")
    result = weights.load(model, folder / "model.safetensors")
    assert result.missing == result.unexpected == ()
    assert model.lm_head.weight is model.transformer.wte.weight  # the tied key, restored from the metadata
    assert model.eval()(torch.randint(SIZE["vocab"], (2, 7))).shape == (2, 7, SIZE["vocab"])


def test_only_the_lora_trained(run: tuple[str, Path]) -> None:
    _, folder = run
    base = load_file(folder / "base" / "model.safetensors")
    fresh = load_file(folder / "adapter.safetensors")
    trained = load_file(folder / "model.safetensors")
    adapted = {re.sub(r"(\.attn\.projections\.\w+)\.(weight|bias)$", r"\1.target.\2", key): key for key in base}
    assert set(trained) == (set(adapted) | set(fresh)) - {"lm_head.weight"}
    for key, base_key in adapted.items():
        if key != "lm_head.weight":  # tied: stored once, as transformer.wte.weight
            assert torch.equal(trained[key], base[base_key]), key
    ups = [key for key in fresh if key.endswith(".up.weight")]
    assert len(ups) == 6
    assert all(not fresh[key].any() and trained[key].any() for key in ups)  # up starts at zero, then learns


def test_it_starts_from_a_hugging_face_gpt2_as_well(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    output = launch(tmp_path, "--from-transformers")
    assert "the sharded model computes the starting model's logits: True" in output
    assert "loaded in one process: same logits: True" in output
    assert (tmp_path / "base" / "config.json").is_file()  # save_pretrained's folder


def excerpts(page: str) -> list[str]:
    return re.findall(r"^```py\n(.*?)^```", page, re.DOTALL | re.MULTILINE)


def test_the_page_shows_the_example_s_own_code() -> None:
    source = EXAMPLE.read_text().splitlines()
    shown = excerpts(PAGE.read_text())
    assert len(shown) >= 2
    for excerpt in shown:
        lines = excerpt.rstrip("\n").splitlines()
        windows = (source[start : start + len(lines)] for start in range(len(source) - len(lines) + 1))
        assert any(textwrap.dedent("\n".join(window)) == "\n".join(lines) for window in windows), (
            f"not a part of examples/distributed.py as it stands:\n{excerpt}"
        )


def test_the_page_and_the_readme_give_the_command() -> None:
    assert COMMAND in PAGE.read_text()
    assert COMMAND in (ROOT / "README.md").read_text()
    assert COMMAND in EXAMPLE.read_text()
