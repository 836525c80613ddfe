"""MkDocs hooks of the documentation site (``hooks:`` in ``mkdocs.yml``).

- The home page is the README, and the layer catalogue is generated from the registry
  (``catalogue.py``) at every build: neither is a file under ``docs/`` to keep in step.
- A folder of pages without an ``index.md`` (``docs/zoo``) gets one listing its pages, so that a
  link to the folder (the README's ``docs/zoo``) has a page to land on.
- The files of ``examples/``, the changelog and the license are published with the site, and a
  page's link to one of them (written relative to the page, as GitHub reads it:
  ``../../examples/vit.jsonnet``) is pointed at that copy; the README's links into ``docs/`` become
  links between pages. Any other link leaving ``docs/`` is left as it is, and
  ``mkdocs build --strict`` reports it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import catalogue  # beside this file: mkdocs puts the hook's folder on sys.path while it loads it
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
CATALOGUE = "reference/catalogue.md"
REPOSITORY_FILES = {"CHANGELOG.md": "changelog.md", "LICENSE": "license.txt"}
"""Files of the repository's root published with the site (where they exist), and their place in it."""
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^\s*(```|~~~)")
_origins: dict[str, Path] = {}
"""Where each generated page's text comes from, to read its relative links as written there."""
_published: dict[Path, str] = {}
"""The place in the site of each file of the repository outside ``docs/`` that is published."""


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs = Path(config.docs_dir)
    if files.get_file_from_path("index.md") is None:
        files.append(File.generated(config, "index.md", content=README.read_text()))
        _origins["index.md"] = README
    files.append(File.generated(config, CATALOGUE, content=catalogue.page()))
    for folder in sorted({path.parent for path in docs.rglob("*.md")} - {docs}):
        index = folder.relative_to(docs).as_posix() + "/index.md"
        if files.get_file_from_path(index) is None:
            files.append(File.generated(config, index, content=folder_index(folder)))
    published = {ROOT / name: place for name, place in REPOSITORY_FILES.items()}
    published |= {path: f"examples/{path.name}" for path in sorted(EXAMPLES.iterdir())}
    for path, place in published.items():
        if path.is_file():
            files.append(File.generated(config, place, abs_src_path=str(path)))
            _published[path.resolve()] = place
            _origins[place] = path
    return files


def folder_index(folder: Path) -> str:
    """A page listing the pages of ``folder`` by their titles (their first heading)."""
    lines = [f"# {folder.name.capitalize()}", ""]
    for page in sorted(folder.glob("*.md")):
        first = next((line for line in page.read_text().splitlines() if line.startswith("# ")), page.stem)
        lines.append(f"- [{first.removeprefix('# ')}]({page.name})")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **kwargs: Any) -> str:
    docs = Path(config.docs_dir).resolve()
    source = _origins.get(page.file.src_uri, docs / page.file.src_uri)
    here = (docs / page.file.src_uri).parent
    lines: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence:
            line = LINK.sub(lambda match: match[1] + site_link(match[2], source, here, docs) + match[3], line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def site_link(target: str, source: Path, here: Path, docs: Path) -> str:
    """``target``, a link written in the file ``source``, as a link from the page's place ``here``
    in the site: into ``docs`` (a folder to its index), or to a published example."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return target
    path, hash_, anchor = target.partition("#")
    resolved = (source.parent / path).resolve()
    if resolved.is_relative_to(docs):
        if resolved.is_dir():
            resolved = resolved / "index.md"
        inside = resolved
    elif resolved in _published:
        inside = docs / _published[resolved]
    else:
        return target
    return os.path.relpath(inside, here).replace(os.sep, "/") + hash_ + anchor
