"""Key mappings: how a foreign checkpoint's keys become addresses in a fluxion tree.

A :class:`KeyMapping` has three parts, applied to each checkpoint key in this order:

1. ``rename``: exact keys to new keys (``None`` drops the key). A renamed key is final.
2. ``rules``: ordered regex substitutions, each applied in turn to the key (``re.sub``). A rule may
   also drop the key, transpose the tensor (``Conv1D`` weights stored as ``(in, out)``) or split it
   into equal parts along a dimension, one key per part (a fused ``qkv`` projection).
3. ``function``: an optional callable run last (``None`` drops the key); not saved to JSON.

>>> mapping = KeyMapping([(r"^encoder\\.layer\\.(\\d+)\\.", r"blocks.\\1."), (r"\\.num_batches_tracked$", None)])
>>> mapping("encoder.layer.3.dense.weight")
'blocks.3.dense.weight'
>>> mapping("bn.num_batches_tracked") is None
True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from fluxion.errors import WeightsError
from fluxion.files import special_kind, write_text_atomically

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Transpose:
    """Swap the first two dimensions (a ``(in, out)`` matrix becomes ``(out, in)``).

    >>> Transpose().shape((3, 5))
    (5, 3)
    """

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape after the step; raises ``WeightsError`` when the step cannot apply.

        >>> Transpose().shape((2, 4, 6))
        (4, 2, 6)
        """
        if len(shape) < 2:
            raise WeightsError(f"cannot transpose a tensor of shape {tuple(shape)}: it needs two dimensions")
        return (shape[1], shape[0], *shape[2:])

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor after the step (a view, no copy).

        >>> Transpose().apply(torch.zeros(3, 5)).shape
        torch.Size([5, 3])
        """
        return tensor.transpose(0, 1)


@dataclass(frozen=True)
class Split:
    """Part ``index`` of ``count`` equal parts along ``dim``.

    >>> Split(index=1, count=3, dim=0).shape((12, 4))
    (4, 4)
    """

    index: int
    count: int
    dim: int

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the part; raises ``WeightsError`` when the size does not divide evenly.

        >>> Split(index=0, count=2, dim=1).shape((3, 8))
        (3, 4)
        """
        if not -len(shape) <= self.dim < len(shape) or shape[self.dim] % self.count:
            raise WeightsError(f"cannot split shape {tuple(shape)} into {self.count} equal parts along dim {self.dim}")
        parts = list(shape)
        parts[self.dim] //= self.count
        return tuple(parts)

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """The part itself (a view, no copy).

        >>> Split(index=2, count=3, dim=0).apply(torch.arange(6)).tolist()
        [4, 5]
        """
        size = tensor.shape[self.dim] // self.count
        return tensor.narrow(self.dim, self.index * size, size)


Step = Transpose | Split


@dataclass(frozen=True)
class Target:
    """Where one checkpoint tensor goes: a tree key and the steps that reshape the tensor on the way.

    >>> Target("head.weight", (Transpose(),)).shape((10, 4))
    (4, 10)
    """

    key: str
    steps: tuple[Step, ...] = ()

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the tensor has once every step has run.

        >>> Target("qkv.weight").shape((6, 2))
        (6, 2)
        """
        for step in self.steps:
            shape = step.shape(shape)
        return shape

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor once every step has run (views; nothing is copied).

        >>> Target("w", (Split(0, 2, 0),)).apply(torch.arange(4)).tolist()
        [0, 1]
        """
        for step in self.steps:
            tensor = step.apply(tensor)
        return tensor


@dataclass(frozen=True)
class Rule:
    """One ordered substitution: where ``pattern`` matches, ``re.sub(pattern, replace, key)``.

    ``replace=None`` drops the key. A tuple of replacements splits the tensor into that many equal
    parts along ``split_dim``, the i-th part going to the i-th replacement. ``transpose`` swaps the
    first two dimensions first.

    >>> rule = Rule(r"c_attn\\.weight$", ("q.weight", "k.weight", "v.weight"), transpose=True)
    >>> [target.key for target in rule.apply(Target("h.0.c_attn.weight"))]
    ['h.0.q.weight', 'h.0.k.weight', 'h.0.v.weight']
    """

    pattern: str
    replace: str | tuple[str, ...] | None
    transpose: bool = False
    split_dim: int = 0
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except (re.error, TypeError) as error:
            raise WeightsError(f"mapping rule pattern {self.pattern!r} is not a valid regex: {error}") from None
        replacements = (self.replace,) if isinstance(self.replace, str) else self.replace or ()
        if not (self.replace is None or isinstance(self.replace, str) or _strings(self.replace)):
            raise WeightsError(f"mapping rule {self.pattern!r}: replace must be a string, a tuple of strings or None")
        for replacement in replacements:
            try:
                compiled.sub(replacement, "")  # checks the template's group references
            except (re.error, IndexError) as error:
                raise WeightsError(f"mapping rule {self.pattern!r} -> {replacement!r}: {error}") from None
        transpose, split_dim = cast(object, self.transpose), cast(object, self.split_dim)
        if not isinstance(transpose, bool) or isinstance(split_dim, bool) or not isinstance(split_dim, int):
            raise WeightsError(
                f"mapping rule {self.pattern!r}: transpose must be True or False and split_dim an integer"
            )
        object.__setattr__(self, "_compiled", compiled)

    def apply(self, target: Target) -> tuple[Target, ...]:
        """The targets ``target`` becomes: itself when the rule does not match, none when it drops.

        >>> Rule(r"^old\\.", "new.").apply(Target("old.weight"))
        (Target(key='new.weight', steps=()),)
        """
        compiled = self._compiled
        if not compiled.search(target.key):
            return (target,)
        if self.replace is None:
            return ()
        steps = (*target.steps, Transpose()) if self.transpose else target.steps
        replacements = (self.replace,) if isinstance(self.replace, str) else self.replace
        targets: list[Target] = []
        for index, replacement in enumerate(replacements):
            key = compiled.sub(replacement, target.key)
            split = (Split(index, len(replacements), self.split_dim),) if isinstance(self.replace, tuple) else ()
            targets.append(Target(key, (*steps, *split)))
        return tuple(targets)


RuleLike = Rule | tuple[str, str | None] | tuple[str, tuple[str, ...]]


class KeyMapping:
    """Turns checkpoint keys into tree keys: exact renames, then ordered rules, then a function.

    >>> mapping = KeyMapping(rename={"fc.weight": "head.weight"}, rules=[(r"^fc\\.", "head.")])
    >>> mapping("fc.weight"), mapping("fc.bias")
    ('head.weight', 'head.bias')
    """

    def __init__(
        self,
        rules: Iterable[RuleLike] = (),
        *,
        rename: Mapping[str, str | None] | None = None,
        function: Callable[[str], str | None] | None = None,
    ) -> None:
        given_rules, given_rename, given_function = cast(object, rules), cast(object, rename), cast(object, function)
        if isinstance(given_rules, str) or not isinstance(given_rules, Iterable):
            raise WeightsError(f"rules must be a list of rules, got {given_rules!r}")
        if given_rename is not None and not (
            isinstance(given_rename, Mapping)
            and all(_is_rename(key, value) for key, value in cast("Mapping[object, object]", given_rename).items())
        ):
            raise WeightsError(f"rename must be a dict of keys to new keys (or None to drop), got {given_rename!r}")
        if given_function is not None and not callable(given_function):
            raise WeightsError(f"function must be callable (a key to a new key or None), got {given_function!r}")
        self.rules: tuple[Rule, ...] = tuple(_as_rule(rule) for rule in rules)
        self.rename: dict[str, str | None] = dict(rename or {})
        self.function = function

    def targets(self, key: str) -> tuple[Target, ...]:
        """Every tree key (with its tensor steps) that checkpoint ``key`` feeds; empty when dropped.

        >>> mapping = KeyMapping([(r"qkv", ("q", "k", "v"))])
        >>> [target.key for target in mapping.targets("attn.qkv.bias")]
        ['attn.q.bias', 'attn.k.bias', 'attn.v.bias']
        """
        if key in self.rename:
            renamed = self.rename[key]
            return () if renamed is None else (Target(renamed),)
        targets = (Target(key),)
        for rule in self.rules:
            targets = tuple(result for target in targets for result in rule.apply(target))
        if self.function is not None:
            mapped = [(self._call_function(target.key), target.steps) for target in targets]
            targets = tuple(Target(key, steps) for key, steps in mapped if key is not None)
        return targets

    def _call_function(self, key: str) -> str | None:
        try:
            result = cast(Callable[[str], object], self.function)(key)
        except Exception as error:
            raise WeightsError(f"the mapping function failed on {key!r}: {type(error).__name__}: {error}") from error
        if result is not None and not isinstance(result, str):
            raise WeightsError(f"the mapping function turned {key!r} into {result!r}; it must return a key or None")
        return result

    def __call__(self, key: str) -> str | None:
        """The single tree key for ``key`` (``None`` when dropped); see ``targets`` for splits.

        >>> KeyMapping(rename={"a": "b"})("a")
        'b'
        """
        targets = self.targets(key)
        if len(targets) > 1:
            raise WeightsError(f"key {key!r} maps to {len(targets)} keys; use KeyMapping.targets for splits")
        return targets[0].key if targets else None

    def __repr__(self) -> str:
        parts = [f"{len(self.rename)} renames", f"{len(self.rules)} rules"]
        if self.function is not None:
            parts.append(f"function {getattr(self.function, '__name__', self.function)!r}")
        return f"KeyMapping({', '.join(parts)})"

    @classmethod
    def coerce(cls, mapping: MappingLike | None) -> KeyMapping:
        """Any accepted form as a ``KeyMapping``: itself, a dict of exact renames, a list of
        ``(pattern, replacement)`` rules, a callable, the path of a JSON mapping file, or the
        content of one (a dict whose values are not all keys: ``{"rules": [...]}``).

        >>> KeyMapping.coerce({"a": "b"})("a")
        'b'
        >>> KeyMapping.coerce({"rules": [{"pattern": "^fc[.]", "replace": "head."}]})("fc.bias")
        'head.bias'
        >>> KeyMapping.coerce(None)("unchanged")
        'unchanged'
        """
        if mapping is None:
            return cls()
        if isinstance(mapping, KeyMapping):
            return mapping
        if isinstance(mapping, str | os.PathLike):
            return cls.read(cast("str | os.PathLike[str]", mapping))
        if isinstance(mapping, Mapping):
            given = cast("Mapping[object, object]", mapping)
            odd = [(key, value) for key, value in given.items() if not _is_rename(key, value)]
            if not odd:
                return cls(rename=cast("Mapping[str, str | None]", mapping))
            if given.keys() & {"fluxion_mapping", "rename", "rules"}:
                return cls.from_json(dict(given))
            key, value = odd[0]
            raise WeightsError(
                f"a dict of renames maps checkpoint keys to tree keys (strings) or None; {key!r} maps to {value!r}"
            )
        if callable(mapping):
            return cls(function=mapping)
        if not isinstance(mapping, Iterable):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise WeightsError(f"mapping must be a KeyMapping, dict, list of rules, callable or path; got {mapping!r}")
        return cls(mapping)

    def to_json(self) -> dict[str, Any]:
        """The mapping as JSON-ready data (``function`` cannot be saved and raises).

        >>> KeyMapping([(r"^a\\.", "b.")]).to_json()["rules"]
        [{'pattern': '^a\\\\.', 'replace': 'b.'}]
        """
        if self.function is not None:
            raise WeightsError("a KeyMapping with a Python function cannot be saved as JSON; use rules instead")
        rules: list[dict[str, Any]] = []
        for rule in self.rules:
            entry: dict[str, Any] = {"pattern": rule.pattern, "replace": _json_replace(rule.replace)}
            if rule.transpose:
                entry["transpose"] = True
            if isinstance(rule.replace, tuple) and rule.split_dim:
                entry["split_dim"] = rule.split_dim
            rules.append(entry)
        return {"fluxion_mapping": FORMAT_VERSION, "rename": dict(self.rename), "rules": rules}

    def write(self, path: str | os.PathLike[str]) -> None:
        """Save the mapping as a JSON file that ``KeyMapping.read`` (or ``mapping=path``) reads back.

        The file is written atomically (see ``fluxion.files``): an interrupted write leaves the old file.

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "mapping.json"
        >>> KeyMapping(rename={"a": "b"}).write(path)
        >>> KeyMapping.read(path)("a")
        'b'
        """
        text = json.dumps(self.to_json(), indent=2) + "\n"
        write_text_atomically(_checked_path(path, "write"), text, error=WeightsError)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> KeyMapping:
        """Read a JSON mapping file; a malformed file raises ``WeightsError`` naming what is wrong.

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "mapping.json"
        >>> _ = path.write_text('{"rules": [{"pattern": "^fc\\\\\\\\.", "replace": "head."}]}')
        >>> KeyMapping.read(path)("fc.weight")
        'head.weight'
        """
        kind = special_kind(_checked_path(path, "read"))
        if kind is not None:
            raise WeightsError(f"mapping file {os.fspath(path)!r} is {kind}, not a regular file")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WeightsError(f"mapping file {os.fspath(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WeightsError(f"mapping file {os.fspath(path)!r} is not readable JSON: {error}") from None
        try:
            return cls.from_json(data)
        except WeightsError as error:
            raise WeightsError(f"mapping file {os.fspath(path)!r}: {error}") from None

    @classmethod
    def from_json(cls, data: object) -> KeyMapping:
        """Build a mapping from JSON data (the format ``to_json`` writes).

        >>> KeyMapping.from_json({"rename": {"x": None}})("x") is None
        True
        """
        if not isinstance(data, dict):
            raise WeightsError(f"a mapping must be a JSON object, got {type(data).__name__}")
        document = cast("dict[str, Any]", data)
        unknown = set(document) - {"fluxion_mapping", "rename", "rules"}
        if unknown:
            raise WeightsError(f"unknown mapping fields {sorted(unknown)}; expected 'rename' and 'rules'")
        version = document.get("fluxion_mapping", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise WeightsError(f"mapping format version {version!r} is not supported (this fluxion reads 1)")
        rename = document.get("rename", {})
        if not isinstance(rename, dict) or not all(
            isinstance(value, str | None) for value in cast("dict[str, Any]", rename).values()
        ):
            raise WeightsError("'rename' must map keys to a key or null")
        raw_rules = document.get("rules", [])
        if not isinstance(raw_rules, list):
            raise WeightsError("'rules' must be a list")
        rules = [_rule_from_json(index, entry) for index, entry in enumerate(cast("list[Any]", raw_rules))]
        return cls(rules, rename=cast("dict[str, str | None]", rename))


MappingLike = (
    KeyMapping
    | Mapping[str, str | None]
    | Mapping[str, Any]
    | Iterable[RuleLike]
    | Callable[[str], str | None]
    | str
    | os.PathLike[str]
)
"""Everything ``mapping=`` accepts: see ``KeyMapping.coerce``."""


def _checked_path(path: object, verb: str) -> str | os.PathLike[str]:
    if not isinstance(path, str | os.PathLike):
        raise WeightsError(f"KeyMapping.{verb} takes a file path (a str or a Path), got {type(path).__name__}")
    return cast("str | os.PathLike[str]", path)


def _as_rule(rule: RuleLike) -> Rule:
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[0], str):  # pyright: ignore[reportUnnecessaryIsInstance]
        pattern, replace = rule
        if isinstance(replace, list):
            replace = tuple(cast("list[str]", replace))
        return Rule(pattern, replace)
    raise WeightsError(f"a mapping rule must be a Rule or a (pattern, replacement) pair, got {rule!r}")


def _is_rename(key: object, value: object) -> bool:
    return isinstance(key, str) and isinstance(value, str | None)


def _strings(values: object) -> bool:
    """True for a non-empty tuple of strings."""
    if not isinstance(values, tuple):
        return False
    items = cast("tuple[object, ...]", values)
    return bool(items) and all(isinstance(item, str) for item in items)


def _json_replace(replace: str | tuple[str, ...] | None) -> str | list[str] | None:
    return list(replace) if isinstance(replace, tuple) else replace


def _rule_from_json(index: int, entry: object) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(entry, dict):
        raise WeightsError(f"{where} must be an object with 'pattern' and 'replace'")
    fields = cast("dict[str, Any]", entry)
    unknown = set(fields) - {"pattern", "replace", "transpose", "split_dim"}
    if unknown or "pattern" not in fields or "replace" not in fields:
        raise WeightsError(f"{where} needs 'pattern' and 'replace' (optional: 'transpose', 'split_dim')")
    pattern, replace = fields["pattern"], fields["replace"]
    if not isinstance(pattern, str):
        raise WeightsError(f"{where}.pattern must be a string")
    if isinstance(replace, list):
        parts = cast("list[Any]", replace)
        if not parts or not all(isinstance(part, str) for part in parts):
            raise WeightsError(f"{where}.replace must be a string, a non-empty list of strings, or null")
        replace = tuple(cast("list[str]", parts))
    elif not isinstance(replace, str | None):
        raise WeightsError(f"{where}.replace must be a string, a non-empty list of strings, or null")
    transpose, split_dim = fields.get("transpose", False), fields.get("split_dim", 0)
    if not isinstance(transpose, bool) or not isinstance(split_dim, int) or isinstance(split_dim, bool):
        raise WeightsError(f"{where}: 'transpose' must be true/false and 'split_dim' an integer")
    try:
        return Rule(pattern, replace, transpose=transpose, split_dim=split_dim)
    except WeightsError as error:
        raise WeightsError(f"{where}: {error}") from None
