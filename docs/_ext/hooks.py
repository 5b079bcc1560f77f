"""MkDocs hooks: the site needs nothing from the network.

- MathJax is served from the site itself: ``on_post_build`` copies MathJax 3 (the CommonHTML
  build, its fonts and the extensions it loads on demand) from the ``django-static-mathjax``
  package, pinned in the docs extra, into ``site/javascripts/mathjax/``. Without it every
  formula would show as raw TeX offline.
- Each API family page starts with a summary table generated from the docstrings
  (``on_page_markdown``: a line ``<!-- summary: <module> -->``).
- Source listings are left out of the search index, and private bases out of the "Bases:"
  lines (``on_page_content``).
- The site's name carries torchzero's version (``on_config``), so every page says which
  release it documents.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

#: What of MathJax's es5 build the site uses: the TeX + CommonHTML bundle and the files it
#: loads by itself (TeX extensions, fonts, the menu's accessibility parts).
_MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "sre", "adaptors")


def _mathjax_root() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs need MathJax from the django-static-mathjax package: pip install -e '.[docs]'")
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (root / "tex-mml-chtml.js").exists():
        raise RuntimeError(f"MathJax not found under {root}; reinstall the docs extra")
    return root


def on_config(config: Any) -> Any:
    import torchzero

    if torchzero.__version__ not in config.site_name:
        config.site_name = f"{config.site_name} {torchzero.__version__}"
    return config


_SUMMARY = re.compile(r"^<!-- summary: (?P<module>[\w.]+) -->$", re.MULTILINE)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?P<tex>[^$\n]+?)\$(?!\$)")
_DISPLAY_MATH = re.compile(r"\$\$(?P<tex>.+?)\$\$", re.S)
_LINK = re.compile(r"https?://[^\s<>()]+[^\s<>().,;:]")
_MATCHES = re.compile(r"`+(torch\.(?:optim|nn\.utils)\.[A-Za-z_.]*[A-Za-z_])")


def _formula(doc: str) -> str:
    """The docstring's formula on one line: the first line of its first display block, else its
    first inline formula that says something (an assignment or an update)."""
    body = doc.split("\n\n", 1)[1] if "\n\n" in doc else ""
    tex = ""
    if display := _DISPLAY_MATH.search(body):
        lines = [ln.strip() for ln in display["tex"].strip().splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith(("\\begin", "\\end"))]
        if lines:
            tex = lines[0].replace("&", "").rstrip("\\ ").rstrip(",")
            if "\\begin{" in tex and "\\end{" not in tex:  # a case split that goes on: keep what precedes it
                tex = tex[: tex.index("\\begin{")].rsplit("\\qquad", 1)[0]
            tex = re.sub(r"(\\q?quad|,|\s)+$", "", tex)
            if tex.endswith(("\\leftarrow", "=")):  # the first line is only the start of an equation
                tex = ""
    if not tex:
        said = [m["tex"].strip() for m in _INLINE_MATH.finditer(body) if re.search(r"=|\\leftarrow|\\min|\\max", m["tex"])]
        tex = said[0] if said else ""
    # a "|" would end the table cell: \| and | as \Vert{} and \vert{} (no space before the closing $)
    return f"${tex.strip().replace(chr(92) + '|', chr(92) + 'Vert{}').replace('|', chr(92) + 'vert{}')}$" if tex else ""


def _reference(doc: str) -> str:
    """What the class is checked against: a paper's address, or the torch function it matches."""
    refs = doc.split("References:", 1)
    if len(refs) == 2 and (m := _LINK.search(refs[1])):
        return f"[paper]({m.group(0)})"
    if m := _MATCHES.search(doc):
        return f"`{m.group(1)}`"
    return ""


def summary_table(module_name: str) -> str:
    """A markdown table of the public classes of ``module_name``: name (a link to its section),
    what it does in one line, its formula and its reference."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    rows = ["| Module | What it does | Formula | Matches |", "|---|---|---|---|"]
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not inspect.isclass(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        first = doc.split("\n\n", 1)[0].replace("\n", " ").replace("|", "\\|")
        formula = _formula(doc)
        rows.append(f"| [`{name}`][{module_name}.{name}] | {first} | {formula} | {_reference(doc)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """``<!-- summary: torchzero.modules.clipping -->`` on a line of its own becomes the
    family's summary table (built from the docstrings, so it can't go stale)."""
    return _SUMMARY.sub(lambda m: summary_table(m["module"]), markdown)


_BASES = re.compile(r'<p class="doc doc-class-bases">\s*Bases:(?P<bases>.*?)</p>', re.S)
_BASE = re.compile(r"<code>.*?</code>", re.S)


def _public_bases(m: re.Match[str]) -> str:
    """A class's "Bases:" line without private bases (``_NormScale`` is an implementation
    detail); no line at all when none is left. (Done on the page, not in griffe, which needs the
    bases to find inherited signatures.)"""
    kept = [b for b in _BASE.findall(m["bases"]) if not re.search(r">_\w+</", b)]
    return f'<p class="doc doc-class-bases">\n  Bases: {", ".join(kept)}</p>' if kept else ""


def on_page_content(html: str, **kwargs: Any) -> str:
    """Source listings stay on the API pages but out of the search index, so a search for a
    class finds the class, not every helper whose source mentions it; private bases are left
    out of the "Bases:" lines."""
    html = _BASES.sub(_public_bases, html)
    return html.replace('<details class="mkdocstrings-source">', '<details class="mkdocstrings-source" data-search-exclude>')


def on_post_build(config: Any) -> None:
    src = _mathjax_root()
    dest = Path(config.site_dir) / "javascripts" / "mathjax" / "es5"
    for part in _MATHJAX_PARTS:
        s, d = src / part, dest / part
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        elif s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
