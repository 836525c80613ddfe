"""TorchArc's architecture files (format 2: YAML, torcharc >= 2.0), read as they are: ``architecture``
translates a whole file (``modules`` and ``graph``) to fluxion's spec format, ``modules`` each module
spec (a class, ``Sequential``, ``compact``), ``classes`` each class name, ``graph`` the graph
section; ``arc`` reads format 1 (torcharc 1.x's dict arcs). docs/torcharc.md has the whole mapping.

>>> from fluxion.spec import torcharc
>>> torcharc.is_torcharc({"modules": {}, "graph": {}})
True
"""

from fluxion.spec.torcharc.arc import is_arc
from fluxion.spec.torcharc.arc import translation as arc_translation
from fluxion.spec.torcharc.architecture import UnusedModuleWarning, is_torcharc, translate, translation

__all__ = ["UnusedModuleWarning", "arc_translation", "is_arc", "is_torcharc", "translate", "translation"]
