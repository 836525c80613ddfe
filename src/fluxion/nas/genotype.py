"""``Genotype``: a discrete cell architecture in DARTS's form, as plain JSON.

For each cell type (``normal``, ``reduce``) a list of ``[operation, input]`` pairs, two per
intermediate node (node ``i`` of a cell is state ``2 + i``; inputs name earlier states, 0 and 1
being the cell's two inputs), and the states the cell concatenates (``<type>_concat``)::

    {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0], ...], "reduce_concat": [2, 3, 4, 5]}

>>> genotype = Genotype.parse({"normal": [["skip_connect", 0], ["sep_conv_3x3", 1]], "normal_concat": [2]})
>>> genotype.cells["normal"]
(('skip_connect', 0), ('sep_conv_3x3', 1))
>>> genotype.to_json()
{'normal': [['skip_connect', 0], ['sep_conv_3x3', 1]], 'normal_concat': [2]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fluxion.errors import NasError
from fluxion.files import write_text_atomically

Pair = tuple[str, int]
"""One edge of a discrete cell: the operation and the state it reads."""

CONCAT = "_concat"


@dataclass(frozen=True)
class Genotype:
    """Cells by type: their edges (two per intermediate node) and the states they concatenate.

    >>> darts_v2_reduce = Genotype.parse(
    ...     {"reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1]],
    ...      "reduce_concat": [2, 3]}
    ... )
    >>> darts_v2_reduce.nodes("reduce")
    2
    """

    cells: Mapping[str, tuple[Pair, ...]]
    concats: Mapping[str, tuple[int, ...]]

    @classmethod
    def parse(cls, data: object, *, primitives: Collection[str] | None = None) -> Genotype:
        """A genotype from its JSON form, every entry checked; ``primitives`` also checks the operations.

        >>> Genotype.parse({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]], "normal_concat": [2]})
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: genotype: normal[1] reads state 2, but node 0 (state 2) can read states 0..1
        """
        if not isinstance(data, Mapping):
            raise NasError(f"genotype: expected an object of cell types, got {type(data).__name__}")
        entries = cast(Mapping[object, object], data)
        cells: dict[str, tuple[Pair, ...]] = {}
        concats: dict[str, tuple[int, ...]] = {}
        for key in entries:
            if not isinstance(key, str):
                raise NasError(f"genotype: keys are cell types (strings), got {key!r}")
        types = [key for key in entries if isinstance(key, str) and not key.endswith(CONCAT)]
        if not types:
            raise NasError("genotype: no cell type (expected keys such as 'normal' and 'normal_concat')")
        for kind in types:
            cells[kind] = _pairs(kind, entries[kind], primitives)
            concat_key = kind + CONCAT
            if concat_key not in entries:
                raise NasError(f"genotype: {kind!r} has no {concat_key!r} (the states its cell concatenates)")
            concats[kind] = _concat(kind, entries[concat_key], 2 + len(cells[kind]) // 2)
        strays = [
            key for key in entries if isinstance(key, str) and key.endswith(CONCAT) and key[: -len(CONCAT)] not in cells
        ]
        if strays:
            raise NasError(f"genotype: {strays[0]!r} belongs to no cell type")
        return cls(cells=cells, concats=concats)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Genotype:
        """Read a genotype from a JSON file.

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "genotype.json"
        >>> Genotype.parse({"normal": [["skip_connect", 0], ["skip_connect", 1]], "normal_concat": [2]}).save(path)
        >>> Genotype.load(path).concats["normal"]
        (2,)
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise NasError(f"genotype file {os.fspath(path)!r} cannot be read: {error}") from None
        return cls.parse(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the genotype as JSON (DARTS's form).

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "g.json"
        >>> Genotype.parse({"n": [["a", 0], ["b", 1]], "n_concat": [2]}).save(path)
        >>> path.read_text().startswith('{"n": [["a", 0], ["b", 1]]')
        True
        """
        write_text_atomically(Path(path), json.dumps(self.to_json()) + "\n", error=NasError)

    def to_json(self) -> dict[str, Any]:
        """DARTS's form: ``{type: [[op, input], ...], type_concat: [...]}``.

        >>> Genotype.parse({"n": [["a", 0], ["b", 1]], "n_concat": [2]}).to_json()["n_concat"]
        [2]
        """
        data: dict[str, Any] = {}
        for kind, pairs in self.cells.items():
            data[kind] = [[operation, state] for operation, state in pairs]
            data[kind + CONCAT] = list(self.concats[kind])
        return data

    def nodes(self, kind: str) -> int:
        """The number of intermediate nodes of cells of type ``kind``.

        >>> Genotype.parse({"n": [["a", 0], ["b", 1], ["c", 2], ["d", 0]], "n_concat": [2, 3]}).nodes("n")
        2
        """
        return len(self.cells[kind]) // 2

    def canonical(self) -> Genotype:
        """The same cells with each node's two edges in input order: equal for equal networks.

        A node's edges have no order of their own (DARTS lists the stronger first), so compare
        genotypes through this.

        >>> first = Genotype.parse({"n": [["b", 1], ["a", 0]], "n_concat": [2]})
        >>> first.canonical() == Genotype.parse({"n": [["a", 0], ["b", 1]], "n_concat": [2]})
        True
        """
        cells: dict[str, tuple[Pair, ...]] = {}
        for kind, pairs in self.cells.items():
            ordered: list[Pair] = []
            for start in range(0, len(pairs), 2):
                ordered.extend(sorted(pairs[start : start + 2], key=lambda pair: (pair[1], pair[0])))
            cells[kind] = tuple(ordered)
        return Genotype(cells=cells, concats=dict(self.concats))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Genotype):
            return NotImplemented
        return dict(self.cells) == dict(other.cells) and dict(self.concats) == dict(other.concats)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def __str__(self) -> str:
        parts: list[str] = []
        for kind, pairs in self.cells.items():
            nodes = [
                " + ".join(f"{operation}({state})" for operation, state in pairs[start : start + 2])
                for start in range(0, len(pairs), 2)
            ]
            parts.append(f"{kind}: " + " | ".join(nodes) + f" -> concat {list(self.concats[kind])}")
        return "; ".join(parts)


def _pairs(kind: str, value: object, primitives: Collection[str] | None) -> tuple[Pair, ...]:
    if not isinstance(value, list | tuple):
        raise NasError(f"genotype: {kind!r} is a list of [operation, input] pairs, got {type(value).__name__}")
    items = list(cast(Collection[object], value))
    if not items or len(items) % 2:
        raise NasError(f"genotype: {kind!r} has {len(items)} pairs; a cell has two per intermediate node")
    pairs: list[Pair] = []
    for position, item in enumerate(items):
        where = f"{kind}[{position}]"
        if not isinstance(item, list | tuple) or len(cast(Collection[object], item)) != 2:
            raise NasError(f"genotype: {where} is an [operation, input] pair, got {item!r}")
        operation, state = cast(tuple[object, object], tuple(cast(Collection[object], item)))
        if not isinstance(operation, str):
            raise NasError(f"genotype: {where}: the operation is a name, got {operation!r}")
        if isinstance(state, bool) or not isinstance(state, int):
            raise NasError(f"genotype: {where}: the input is a state number, got {state!r}")
        if operation == "none":
            raise NasError(f"genotype: {where} chooses 'none': a discrete cell has no 'none' edges")
        if primitives is not None and operation not in primitives:
            raise NasError(f"genotype: {where}: unknown operation {operation!r}; operations: {', '.join(primitives)}")
        node = position // 2
        if not 0 <= state < node + 2:
            raise NasError(
                f"genotype: {where} reads state {state}, but node {node} (state {node + 2}) "
                f"can read states 0..{node + 1}"
            )
        pairs.append((operation, state))
    return tuple(pairs)


def _concat(kind: str, value: object, states: int) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise NasError(f"genotype: '{kind}{CONCAT}' is a non-empty list of states, got {value!r}")
    found: list[int] = []
    for item in cast(Collection[object], value):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < states:
            raise NasError(f"genotype: '{kind}{CONCAT}' names state {item!r}; the cell has states 0..{states - 1}")
        found.append(item)
    return tuple(found)
