"""MkDocs hooks: the site needs nothing from the network.

- MathJax is served from the site itself: ``on_post_build`` copies MathJax 3 (the CommonHTML
  build, its fonts and the extensions it loads on demand) from the ``django-static-mathjax``
  package, pinned in the docs extra, into ``site/javascripts/mathjax/``. Without it every
  formula would show as raw TeX offline.
- The site's name carries torchzero's version (``on_config``), so every page says which
  release it documents.
"""
from __future__ import annotations

import importlib.util
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
