"""The jsonnet sandbox: what an import may reach, how a job travels to the child and back."""

from __future__ import annotations

import json
from pathlib import Path

from fluxion import spec


def test_an_included_file_reads_from_the_main_specs_folder_tree(tmp_path: Path) -> None:
    (tmp_path / "blocks" / "sub").mkdir(parents=True)
    (tmp_path / "common.libsonnet").write_text("{width: 4}")
    (tmp_path / "blocks" / "sub" / "head.jsonnet").write_text(
        "local common = import '../../common.libsonnet';"
        " {type: 'Linear', in_features: common.width, out_features: common.width}"
    )
    (tmp_path / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "blocks/sub/head.jsonnet"}]})
    )
    assert spec.load(tmp_path / "model.json").Linear.in_features == 4
