"""What a dialect's translation gives: another tool's file as fluxion's spec, and where each node came from.

A dialect (narchi's architectures, TorchArc's YAML: see ``fluxion.spec.dialects``) translates a
whole file to fluxion's own spec format. The builder then builds that spec as any other, and uses
the ``Translation`` to speak the user's language: an error found while building names the place
in the file the user wrote (``source_path``), a diagram shows the names the file gives.

>>> found = Translation({"type": "Linear", "out_features": 2}, {"": Origin("modules.head", {"out_features": "o"})})
>>> found.source_path("out_features")
'modules.head.o'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

_KEY = re.compile(r"^\.?([A-Za-z_]\w*)(.*)$")


@dataclass(frozen=True)
class Origin:
    """Where a node of the translation comes from in the other tool's file, and what the file says of it.

    ``path`` is the node's place in that file; ``keys`` gives the file's key behind each of the
    node's fluxion keys (``out_features`` -> ``output_feats``); ``name`` is a display name the file
    gives (narchi's ``_name``); ``module`` is true for a node naming another file that sees the
    external variables of the file naming it (narchi's ``Module`` block).

    >>> Origin("blocks[2]", {"out_features": "output_feats"}).keys["out_features"]
    'output_feats'
    """

    path: str
    keys: Mapping[str, str] = field(default_factory=dict[str, str])
    name: str | None = None
    module: bool = False


@dataclass(frozen=True)
class Translation:
    """Another tool's file as fluxion's spec, with the origin of each node by its JSON path in the
    spec and the names of the outputs.

    ``classes`` are the classes the spec's ``type`` may name besides the registered ones (a
    dialect's own names, such as ``torch.nn.MultiheadAttention`` for a TorchArc file). With
    ``materialize_on_call`` a model whose sizes are left out and whose input shapes are not given
    is built all the same: its first call infers them (as TorchArc's lazy modules do), instead of
    the load being refused.
    ``init`` gives initializers by address glob that the file writes inside the architecture
    (TorchArc 1's ``init`` on a sub-arc): applied as a root ``init`` section would be, when the
    file has none.

    >>> found = Translation({"type": "Chain", "children": [{"type": "ReLU"}]}, {"children[0]": Origin("blocks[0]")})
    >>> found.origins["children[0]"].path, found.materialize_on_call
    ('blocks[0]', False)
    """

    spec: dict[str, Any]
    origins: Mapping[str, Origin]
    outputs: tuple[str, ...] = ()
    classes: Mapping[str, type[torch.nn.Module]] = field(default_factory=dict[str, type[torch.nn.Module]])
    materialize_on_call: bool = False
    init: Mapping[str, Any] | None = None

    def source_path(self, path: str | None) -> str | None:
        """The path in the other tool's file of a place in the spec: its node's origin, and the key
        within it when the file has that key (``children[1].out_features`` -> ``blocks[1].output_feats``).

        >>> found = Translation({}, {"children[1]": Origin("blocks[1]", {"out_features": "output_feats"})})
        >>> found.source_path("children[1].out_features"), found.source_path("children[1].children[0]")
        ('blocks[1].output_feats', 'blocks[1]')
        >>> found.source_path("edges") is None, found.source_path(None) is None
        (False, True)
        """
        if path is None:
            return None
        node = max(
            (
                place
                for place in self.origins
                if not place or path == place or path.startswith((place + ".", place + "["))
            ),
            key=len,
            default=None,
        )
        if node is None:
            return path
        origin = self.origins[node]
        found = _KEY.match(path[len(node) :])
        if found is None or found.group(1) not in origin.keys:
            return origin.path
        key = origin.keys[found.group(1)]
        return f"{origin.path}.{key}{found.group(2)}" if origin.path else f"{key}{found.group(2)}"
