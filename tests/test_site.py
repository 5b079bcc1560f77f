"""The built site is self-contained: no script, stylesheet or font comes from another host, the
math is typeset by the MathJax served with it, and no page shows TeX that failed to typeset."""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.docs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mkdocs") is None and not Path(sys.executable).with_name("mkdocs").exists():
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        # not -q: a quiet build doesn't count warnings, so --strict would let them pass
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


EXTERNAL = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"[^>]*>", re.I)


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    found = {str(p.relative_to(site)): EXTERNAL.findall(p.read_text(encoding="utf-8")) for p in _pages(site)}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"external scripts or stylesheets: {dict(list(found.items())[:5])}"
    css = "".join(p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*.css"))
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css


def test_mathjax_is_served_with_the_site(site: Path) -> None:
    es5 = site / "javascripts" / "mathjax" / "es5"
    assert (es5 / "tex-mml-chtml.js").stat().st_size > 100_000
    assert list((es5 / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "javascripts/mathjax/es5/tex-mml-chtml.js" in index


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style|code|pre)\b[^>]*>.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<(span|div) class=\"arithmatex\">.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_no_untypeset_tex_is_shown(site: Path) -> None:
    """A ``$`` left in the text is math that arithmatex did not recognise; ``\\_`` in a formula
    shows literally in MathJax's text mode."""
    stray = {}
    for p in _pages(site):
        page = p.read_text(encoding="utf-8")
        text = _visible_text(page)
        hits = [m.group(0) for m in re.finditer(r".{0,30}(?<![\\\w])\$.{0,30}", text)]
        math = " ".join(re.findall(r"<(?:span|div) class=\"arithmatex\">(.*?)</(?:span|div)>", page, flags=re.S))
        hits += [m.group(0) for m in re.finditer(r"\\text\{[^}]*\\_[^}]*\}", math)]
        if hits:
            stray[str(p.relative_to(site))] = hits[:3]
    assert not stray, stray


def test_the_version_is_on_every_page(site: Path) -> None:
    import torchzero

    for p in _pages(site)[:20]:
        assert f"torchzero {torchzero.__version__}" in p.read_text(encoding="utf-8"), p


def test_source_listings_are_not_searched(site: Path) -> None:
    import json

    docs = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    assert docs and not [d["location"] for d in docs if "Source code in" in d["text"]]


def test_no_private_base_is_shown(site: Path) -> None:
    for p in _pages(site):
        bases = re.findall(r'<p class="doc doc-class-bases">(.*?)</p>', p.read_text(encoding="utf-8"), flags=re.S)
        assert not [b for b in bases if re.search(r">_\w+</", b)], p
