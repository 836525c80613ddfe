"""The documentation site: ``mkdocs build --strict`` of ``mkdocs.yml`` (no network), what the built
pages hold (the layer catalogue generated from the registry, the API reference, the home page from
the README, links to the examples), and two pages as headless Chromium renders them."""

from __future__ import annotations

import doctest
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fluxion.spec import registry

ROOT = Path(__file__).resolve().parents[2]
SITE_SCRIPTS = ROOT / "scripts" / "site"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_HELP = (
    "headless Chromium is not installed, so no page was rendered in a browser "
    "(apt-get install chromium, or set FLUXION_CHROMIUM to a Chromium or Chrome binary)"
)


def script(name: str) -> ModuleType:
    """A module of ``scripts/site`` (not a package: mkdocs and Griffe load them by path)."""
    spec = importlib.util.spec_from_file_location(f"site_{name}", SITE_SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(SITE_SCRIPTS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SITE_SCRIPTS))
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly (a broken link, a missing page or reference fails) into a temporary folder."""
    folder = tmp_path_factory.mktemp("site")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", str(folder)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr}"
    return folder


def text_of(page: Path) -> str:
    """The text of a built page's article, tags removed and spaces collapsed."""
    markup = page.read_text()
    article = markup[markup.index("<article") : markup.index("</article>")]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", article)).split())


def test_the_catalogue_lists_every_registered_layer_with_its_shape_rule(site: Path) -> None:
    page = site / "reference" / "catalogue" / "index.html"
    markup, text = page.read_text(), text_of(page)
    for name in script("catalogue").library_layers():
        assert f'id="{name.lower()}"' in markup, f"{name} has no entry in the catalogue"
    assert "Conv2d Conv2d(out_channels=16, kernel_size=3, stride=2, padding=1) " in text
    assert "(B, C, H, W) -> (B, out_channels, ceil(H/2), ceil(W/2)) in_channels = C" in text
    assert "Linear(out_features=64) (B, D) -> (B, out_features) in_features = D" in text
    assert "Upsample(scale_factor=2) (B, C, H, W) -> (B, C, 2*H, 2*W)" in text
    assert "Interpolate(mode='bilinear') (B, C, H, W), (H2, W2) -> (B, C, H2, W2)" in text
    assert "(B, C, H, W) -> (B, C/4, 2*H, 2*W)" in text  # PixelShuffle
    assert "Needs: C must be divisible by 4: PixelShuffle expects channels" in text
    assert "T ≤ 512: SequencePositionEmbedding has 512 positions" in text  # a bound no equation states
    assert "Unbind needs a number for dim 1" in text
    assert "Shown for N = 3." in text
    # UseContext gives what its SetContext stored, not what came in: shown inside a Chain
    assert "UseContext(context='unet', key='skip')) (B, C, H, W) -> (B, C, H, W)" in text
    assert 'href="../layers/#fluxion.layers.Conv2d"' in markup  # each entry links to its API reference
    assert 'href="../nas/#fluxion.nas.Choice"' in markup  # classes of the entry-point modules too


def test_every_registered_layer_has_a_catalogue_example_whose_rule_is_shown_or_explained() -> None:
    catalogue = script("catalogue")
    registered = set(catalogue.library_layers())
    assert registered <= set(catalogue.EXAMPLES), f"add an example for {sorted(registered - set(catalogue.EXAMPLES))}"
    assert set(catalogue.EXAMPLES) <= registered, "examples of classes no longer registered"
    for entry in catalogue.entries():
        assert entry.rule is not None or entry.notes, entry.name
        assert entry.reference is not None, f"{entry.name} is not public in fluxion.layers or an entry-point module"


BOUNDED = {
    "AvgPool2d": ["H ≥ 2", "W ≥ 2"],
    "MaxPool1d": ["L ≥ 2"],
    "TorchFunction": ["D ≥ 2"],  # topk with k=2
    "SequencePositionEmbedding": ["T ≤ 512"],
    "BatchNorm1d": ["B ≥ 2"],  # in training, one value per channel is refused
    "MaxPool2d": [],  # a window of 3 with a padding of 1 takes a size of 1
    "GroupNorm": [],  # C's multiples of 8 all work: its need is the divisibility alone
}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_the_least_and_greatest_size_a_rule_takes_are_among_the_needs(name: str) -> None:
    catalogue = script("catalogue")
    entry = catalogue.entry(name, registry.lookup(name), catalogue.public_paths())
    bounds = [need.partition(":")[0] for need in entry.needs if "≥" in need or "≤" in need]
    assert bounds == BOUNDED[name], entry.needs
    for need in entry.needs:
        assert "(the root)" not in need, need  # the reason without where and what came in


def test_a_rule_shows_an_argument_by_name_only_where_the_layers_rule_carries_it() -> None:
    catalogue = script("catalogue")
    paths = catalogue.public_paths()
    linear = catalogue.entry("Linear", registry.lookup("Linear"), paths)
    assert linear.rule == "(B, D) -> (B, out_features)"
    assert linear.inferred == "in_features = D"
    chain = catalogue.entry("Chain", registry.lookup("Chain"), paths)  # the 64 of a child stays a number
    assert chain.rule == "(B, D) -> (B, 64)"
    split = catalogue.entry("Split", registry.lookup("Split"), paths)
    assert split.rule == "(B, 64) -> ((B, 16), (B, 48))"
    pack = catalogue.entry("Pack", registry.lookup("Pack"), paths)
    assert pack.rule == "(B, D) -> ((B, D),)"


REFERENCE = {
    "tree": ["fluxion.tree"],
    "layers": ["fluxion.layers"],
    "shapes": ["fluxion.shapes"],
    "weights": ["fluxion.weights"],
    "adapters": ["fluxion.adapters", "fluxion.adapters.lora"],
    "spec": ["fluxion.spec", "fluxion.spec.narchi", "fluxion.spec.torcharc"],
    "inspect": ["fluxion.inspect"],
    "training": ["fluxion.training"],
    "nas": ["fluxion.nas"],
    "distributed": ["fluxion.distributed"],
    "dims": ["fluxion.dims"],
    "errors": ["fluxion.errors"],
    "cli": ["fluxion.cli"],
}
"""The modules each API reference page documents."""


def public_names(module: ModuleType) -> list[str]:
    """A module's ``__all__``, or without one the public names it defines itself."""
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return list(exported)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    ]


def test_the_api_reference_has_an_entry_for_every_public_name(site: Path) -> None:
    missing: list[str] = []
    for page, modules in REFERENCE.items():
        markup = (site / "reference" / page / "index.html").read_text()
        for name in modules:
            for member in public_names(importlib.import_module(name)):
                if f'id="{name}.{member}"' not in markup and f'id="{name}.{member}.{member}"' not in markup:
                    missing.append(f"{name}.{member} (reference/{page}.md)")
    assert not missing, "names without an entry in the API reference:\n" + "\n".join(missing)


def test_the_api_reference_renders_docstrings_and_their_examples(site: Path) -> None:
    tree = (site / "reference" / "tree" / "index.html").read_text()
    assert 'id="fluxion.tree.Chain.insert"' in tree
    assert "Insert <code>module</code> before position <code>index</code>" in tree
    assert '<span class="gp">&gt;&gt;&gt; </span>' in tree  # a doctest session is a code block
    shapes = (site / "reference" / "shapes" / "index.html").read_text()
    assert 'id="fluxion.shapes.infer.infer"' in shapes  # a function named like its module


def test_the_home_page_is_the_readme_with_its_links_between_pages(site: Path) -> None:
    home = (site / "index.html").read_text()
    assert "<title>fluxion</title>" in home
    assert 'id="a-taste"' in home
    assert 'href="tree/"' in home
    assert 'href="zoo/"' in home
    assert 'href="changelog/"' in home
    assert (site / "changelog" / "index.html").is_file()
    assert "Neurlink" in text_of(site / "zoo" / "index.html")  # the folder's pages, listed


def test_links_to_the_examples_reach_the_published_files(site: Path) -> None:
    page = (site / "zoo" / "bert" / "index.html").read_text()
    assert 'href="../../examples/bert.jsonnet"' in page
    assert (site / "examples" / "bert.jsonnet").read_bytes() == (ROOT / "examples" / "bert.jsonnet").read_bytes()


def test_the_site_fetches_nothing_from_the_network(site: Path) -> None:
    for page in (site / "index.html", site / "reference" / "catalogue" / "index.html"):
        markup = page.read_text()
        assert "fonts.googleapis.com" not in markup
        assert "fonts.gstatic.com" not in markup
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', markup), page


def test_docstrings_read_as_markdown() -> None:
    markdown = script("docstrings").markdown
    text = "Use :class:`Chain` or :meth:`~list.insert`.\n\n>>> [1, 2]  # doctest: +ELLIPSIS\n[1, 2]\n\nAfter."
    assert markdown(text).splitlines() == [
        "Use `Chain` or `list.insert`.",
        "",
        "```pycon",
        ">>> [1, 2]",
        "[1, 2]",
        "```",
        "",
        "After.",
    ]
    fenced = "```python\nx = ':class:`A`'\n```"
    assert markdown(fenced) == fenced  # code is left as written
    indented = "    >>> 1\n    1"
    assert markdown(indented).splitlines() == ["    ```pycon", "    >>> 1", "    1", "    ```"]


def test_links_written_for_github_become_links_between_pages() -> None:
    site_link = script("hooks").site_link
    docs = ROOT / "docs"
    readme = ROOT / "README.md"
    assert site_link("docs/tree.md#naming", readme, docs, docs) == "tree.md#naming"
    assert site_link("docs/zoo", readme, docs, docs) == "zoo/index.md"  # a folder: its index page
    assert site_link("../tree.md", docs / "zoo" / "mlp.md", docs / "zoo", docs) == "../tree.md"
    assert site_link("https://pytorch.org", readme, docs, docs) == "https://pytorch.org"
    assert site_link("#a-taste", readme, docs, docs) == "#a-taste"
    assert site_link("../src/fluxion/tree/chain.py", docs / "tree.md", docs, docs) == "../src/fluxion/tree/chain.py"


@pytest.mark.parametrize("name", ["catalogue", "docstrings"])
def test_the_examples_in_the_site_scripts_run(name: str) -> None:
    result = doctest.testmod(script(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def chromium() -> str | None:
    """The headless browser to render pages with: FLUXION_CHROMIUM, or the first of the usual names found."""
    given = os.environ.get("FLUXION_CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def rendered(browser: str, page: Path, tmp_path: Path) -> str:
    """The page's DOM once headless Chromium has loaded it and run its scripts."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_pages_as_a_reader_sees_them_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip(CHROMIUM_HELP)
    for page, title, seen in (
        (
            site / "reference" / "catalogue" / "index.html",
            "Layer catalogue - fluxion",
            "(B, C, H, W) -&gt; (B, out_channels, ceil(H/2), ceil(W/2))",
        ),
        (site / "tree" / "index.html", "The tree - fluxion", "Extending the tree"),
    ):
        dom = rendered(browser, page, tmp_path)
        assert f"<title>{title}</title>" in dom
        assert seen in dom
        shown = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
        assert "404 - Not found" not in shown  # the site's own page for a missing one
        assert "Page not found" not in shown
    catalogue = rendered(browser, site / "reference" / "catalogue" / "index.html", tmp_path)
    row = re.search(r'<tr>\s*<td><a href="#pixelshuffle">PixelShuffle</a></td>(.*?)</tr>', catalogue, re.DOTALL)
    assert row is not None
    assert "2*H" in row[1]
