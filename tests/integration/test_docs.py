"""Every ```python block of the user guide and README runs, in order, one namespace per page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_code_blocks_run(page: Path) -> None:
    blocks = BLOCK.findall(page.read_text())
    assert blocks, f"{page.name} has no python code block"
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page.name} block {number}", "exec")
        exec(code, namespace)


def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile((ROOT / "examples" / "demo.py").read_text(), "demo.py", "exec"), namespace)
    output = capsys.readouterr().out
    assert "(CHAIN) Classifier()" in output
    assert "failed here" in output
