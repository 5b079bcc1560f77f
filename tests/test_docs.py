"""The documentation stays complete and its examples keep running.

- every public name (``torchzero.__all__``, ``torchzero.m.__all__``) is in the API reference;
- every page under ``docs/`` is in the nav of ``mkdocs.yml``;
- every ```python block in ``docs/**/*.md`` and ``README.md`` runs (each in a fresh namespace; a block whose first
  line is ``# docs: skip`` is not run);
- every ``>>>`` example in a torchzero docstring passes as a doctest.

The site build itself (``mkdocs build --strict``) runs in ``.ci/run``.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import torchzero as tz

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"

# names in torchzero.__all__ that are not objects to document on their own:
# ``m`` is the namespace of the modules (its names are checked one by one below).
NOT_DOCUMENTED = {"m", "__version__"}


# ------------------------------------------------------------------------------ the API reference
DIRECTIVE = re.compile(r"^:::[ \t]+(?P<path>[\w.]+)[ \t]*\n(?P<options>(?:[ \t]+.*\n|[ \t]*\n)*)", re.MULTILINE)
MEMBERS = re.compile(r"^\s+members:\s*(?:\[(?P<inline>[^\]]*)\]|\n(?P<block>(?:\s+-\s*\S+\s*\n)+))", re.MULTILINE)


def _import_path(path: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _members_option(options: str) -> list[str] | None:
    m = MEMBERS.search(options)
    if m is None:
        return None
    raw = m["inline"] if m["inline"] is not None else m["block"]
    return [x.strip().strip("-").strip().strip("'\"") for x in re.split(r"[,\n]", raw) if x.strip().strip("-").strip()]


def documented_objects() -> dict[int, str]:
    """``id(obj) -> "page: directive"`` for every object a ``:::`` directive in docs/api renders."""
    out: dict[int, str] = {}
    for page in sorted(API.glob("*.md")):
        text = page.read_text(encoding="utf-8") + "\n"
        for m in DIRECTIVE.finditer(text):
            where = f"{page.relative_to(DOCS)}: ::: {m['path']}"
            obj = _import_path(m["path"])
            out[id(obj)] = where
            if isinstance(obj, ModuleType):
                names = _members_option(m["options"])
                if names is None:
                    names = list(getattr(obj, "__all__", [n for n in vars(obj) if not n.startswith("_")]))
                for name in names:
                    out.setdefault(id(getattr(obj, name)), where)
    return out


def test_api_directives_resolve() -> None:
    assert documented_objects(), "no ::: directives found in docs/api/*.md"


@pytest.mark.parametrize(
    "namespace, name",
    [("torchzero", n) for n in tz.__all__ if n not in NOT_DOCUMENTED] + [("torchzero.m", n) for n in tz.m.__all__],
    ids=lambda x: x,
)
def test_public_name_in_api_reference(namespace: str, name: str) -> None:
    obj = getattr(_import_path(namespace), name)
    assert id(obj) in documented_objects(), (
        f"{namespace}.{name} is public (in __all__) but no '::: ' directive in docs/api/*.md renders it; "
        f"add '::: {getattr(obj, '__module__', namespace)}.{name}' to the right page"
    )


def test_every_page_in_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config.split("\nnav:", 1)[1].split("\n\n", 1)[0]
    in_nav = set(re.findall(r"([\w/.-]+\.md)\b", nav))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_ext" not in p.parts}
    assert pages - in_nav == set(), f"pages missing from the nav in mkdocs.yml: {sorted(pages - in_nav)}"
    assert in_nav - pages == set(), f"nav entries without a page: {sorted(in_nav - pages)}"


# ------------------------------------------------------------------------------ code blocks in docs/ and the README
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?:python|py)\b[^\n]*\n(?P<code>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def python_blocks() -> list[Any]:
    params = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            code = textwrap.dedent(m["code"])
            rel = page.relative_to(ROOT).as_posix()
            marks = [pytest.mark.skip(reason="marked '# docs: skip'")] if code.lstrip().startswith("# docs: skip") else []
            params.append(pytest.param(rel, line, code, id=f"{rel}:{line}", marks=marks))
    return params


@pytest.mark.parametrize("page, line, code", python_blocks())
def test_docs_code_block_runs(page: str, line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    torch.manual_seed(0)
    exec(compile(code, f"{page}:{line}", "exec"), {"__name__": "__docs__"})


def test_docs_have_code_blocks() -> None:
    assert python_blocks(), "found no ```python blocks in docs/ (is the FENCE pattern broken?)"


# ------------------------------------------------------------------------------ docstring examples
def torchzero_modules() -> list[ModuleType]:
    mods = [tz]
    for info in pkgutil.walk_packages(tz.__path__, prefix="torchzero."):
        mods.append(importlib.import_module(info.name))
    return mods


def docstring_examples() -> list[Any]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    params, seen = [], set()
    for mod in torchzero_modules():
        for test in finder.find(mod, mod.__name__):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                params.append(pytest.param(test, id=test.name))
    return params


DOCTESTS = docstring_examples()


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_example(test: doctest.DocTest) -> None:
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    globs = dict(test.globs)
    test = doctest.DocTest(test.examples, globs, test.name, test.filename, test.lineno, test.docstring)
    runner.run(test, out=out.append)
    if runner.failures:
        pytest.fail("".join(out), pytrace=False)


def test_public_modules_have_examples() -> None:
    """Every module in ``tz.m`` shows how to use it (``Example:`` with ``>>>``)."""
    names = {t.values[0].name.rsplit(".", 1)[-1] for t in DOCTESTS}
    classes = [n for n in tz.m.__all__ if isinstance(getattr(tz.m, n), type)]
    missing = [n for n in classes if n not in names]
    assert not missing, f"modules without a >>> example in their docstring: {missing}"


def test_nothing_cites_files_outside_the_repository_or_issue_numbers() -> None:
    """Docs, docstrings, tests and scripts cite the project's own pages, not a spec kept elsewhere
    or the tracker's issue numbers (which a reader of the repository can't follow)."""
    import re
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # the conformance runner looks for PyTorch's test file in a folder beside the repository: a path, not a citation
    allowed = {"tests/conformance/run_torch_suite.py"}
    # (the pattern is built from parts so that this line doesn't match itself)
    outside = "|".join([r"\.\." + "/" + "shared", "shared" + "/" + "spec", "the clipping " + "spec", r"\bissue" + r" #?\d+\b"])
    pattern = re.compile(outside, re.IGNORECASE)
    hits = []
    for name in files:
        if name in allowed or not name.endswith((".py", ".md", ".yml", ".toml", ".c", ".txt")):
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        hits += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not hits, hits
