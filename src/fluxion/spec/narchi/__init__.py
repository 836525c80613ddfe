"""narchi's architecture files, read as they are: ``architecture`` translates a whole file (blocks,
graph, inputs, outputs, nested ``Module`` files, ``_id_share`` groups) to fluxion's spec format,
``blocks`` maps each leaf block class to a fluxion node. docs/narchi.md has the whole mapping.

>>> from fluxion.spec import narchi
>>> narchi.is_narchi({"blocks": [], "graph": [], "inputs": [], "outputs": []})
True
"""

from fluxion.spec.narchi.architecture import Origin, Translation, is_narchi, translate, translation

__all__ = ["Origin", "Translation", "is_narchi", "translate", "translation"]
