"""The report of a checkpoint that does not fit a model: every problem, grouped and counted.

Keys that differ only by numbers (``blocks.0.norm.weight``, ``blocks.1.norm.weight``...) are folded
into one line, and each unexpected checkpoint key gets the nearest tree address as a suggestion.

>>> problems = Problems(missing=["head.weight", "head.bias"], unexpected=["haed.weight", "haed.bias"])
>>> print(problems.describe("model.safetensors"))
model.safetensors does not fit the model: 2 missing, 2 unexpected
  missing from the checkpoint (2):
    head.bias
    head.weight
  unexpected in the checkpoint (2):
    haed.bias  (did you mean head.bias?)
    haed.weight  (did you mean head.weight?)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_NUMBER = re.compile(r"\d+")
_SHOWN_GROUPS = 12


@dataclass
class Problems:
    """Everything wrong between a model and a checkpoint, found before any tensor is copied.

    ``mismatched`` holds ``(key, why)`` pairs; ``mapped`` gives the tree key an unexpected checkpoint
    key was mapped to (when a mapping or prefix changed it); ``candidates`` are the model's keys,
    for suggestions.

    >>> Problems().empty
    True
    """

    missing: list[str] = field(default_factory=lambda: [])
    unexpected: list[str] = field(default_factory=lambda: [])
    mismatched: list[tuple[str, str]] = field(default_factory=lambda: [])
    mapped: dict[str, str] = field(default_factory=lambda: {})
    candidates: list[str] = field(default_factory=lambda: [])

    @property
    def empty(self) -> bool:
        """True when nothing is wrong.

        >>> Problems(missing=["x"]).empty
        False
        """
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, name: str) -> str:
        """A message listing every problem, grouped, with counts and suggestions.

        >>> print(Problems(mismatched=[("fc.weight", "model (2, 4), checkpoint (2, 5)")]).describe("ckpt"))
        ckpt does not fit the model: 1 mismatched
          mismatched (1):
            fc.weight: model (2, 4), checkpoint (2, 5)
        """
        counts = [
            f"{len(items)} {label}"
            for items, label in (
                (self.missing, "missing"),
                (self.unexpected, "unexpected"),
                (self.mismatched, "mismatched"),
            )
            if items
        ]
        lines = [f"{name} does not fit the model: {', '.join(counts)}"]
        if self.missing:
            lines.append(f"  missing from the checkpoint ({len(self.missing)}):")
            lines += [f"    {line}" for line in _grouped(self.missing)]
        if self.unexpected:
            lines.append(f"  unexpected in the checkpoint ({len(self.unexpected)}):")
            nearest = self.missing or self.candidates
            lines += [f"    {line}" for line in _grouped(self.unexpected, suggest_from=nearest, mapped=self.mapped)]
        if self.mismatched:
            lines.append(f"  mismatched ({len(self.mismatched)}):")
            reasons = dict(self.mismatched)
            lines += [f"    {line}" for line in _grouped(reasons, reasons=reasons)]
        return "\n".join(lines)


def _grouped(
    keys: Iterable[str],
    *,
    suggest_from: list[str] | None = None,
    mapped: dict[str, str] | None = None,
    reasons: dict[str, str] | None = None,
) -> list[str]:
    """One line per family of keys that differ only by numbers, with what is known about it:
    the key it was mapped to, the nearest model key, or why it does not fit."""
    families: dict[str, list[str]] = {}
    for key in sorted(keys, key=_natural):
        families.setdefault(_NUMBER.sub("#", key), []).append(key)
    lines: list[str] = []
    for members in list(families.values())[:_SHOWN_GROUPS]:
        first = members[0]
        if len(members) == 1:
            line = first
            if mapped and first in mapped:
                line += f" (mapped to {mapped[first]})"
        else:
            line = f"{_pattern(members)}  ({len(members)} keys: {first} ... {members[-1]})"
        if reasons:
            example = "" if len(members) == 1 else "e.g. "
            line += f": {example}{reasons[first]}"
        if suggest_from:
            close = difflib.get_close_matches((mapped or {}).get(first, first), suggest_from, n=1, cutoff=0.6)
            if close:
                line += f"  (did you mean {close[0]}?)"
        lines.append(line)
    if len(families) > _SHOWN_GROUPS:
        hidden = sum(len(members) for members in list(families.values())[_SHOWN_GROUPS:])
        lines.append(f"... and {hidden} more keys in {len(families) - _SHOWN_GROUPS} more groups")
    return lines


def _pattern(members: list[str]) -> str:
    """The keys with each varying number shown as ``*``, e.g. ``blocks.*.norm.weight``."""
    split = [_NUMBER.split(key) for key in members]
    numbers = [_NUMBER.findall(key) for key in members]
    pieces = split[0]
    out: list[str] = []
    for position, text in enumerate(pieces):
        out.append(text)
        if position < len(numbers[0]):
            values = {found[position] for found in numbers}
            out.append(numbers[0][position] if len(values) == 1 else "*")
    return "".join(out)


def _natural(key: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]
