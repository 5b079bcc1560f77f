"""Griffe extension: make torchzero's docstrings render well with mkdocstrings.

torchzero's docstrings are written for ``help()`` and doctest as much as for the site, in the
Google style as Napoleon reads it. Two things in them need translating for griffe's parser:

- Sphinx cross-reference roles (``:class:`ClipNorm```, ``:func:`~torchzero.functional.norms.parse_ord```)
  become *optional* mkdocs-autorefs links: a link where the target is documented on the site,
  plain code where it is not (never a build warning). ``~`` shortens the title to the last
  component, as in Sphinx.
- each module class gets a "See also" box linking related modules (:data:`SEE_ALSO`);
- "(default: ...)" in an argument's description is dropped (the parameter table shows the
  default in its own column);
- a bare web address (a paper in ``References:``) becomes a link;
- an ``Example:`` section header becomes ``Examples:``, the only spelling griffe parses as an
  examples section (so ``>>>`` lines render as Python sessions, not as nested block quotes).
"""
from __future__ import annotations

import html
import re
from typing import Any

import griffe

EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
#: "(default: ...)" in an argument's description: the parameter table has a Default column.
DEFAULT_NOTE = re.compile(r"[ \t]*\(default: (?:[^()]|\([^()]*\))*\)")
#: A bare web address (papers in ``References:``), made a link; one already in a link is left alone.
URL = re.compile(r"(?<![<(\[\"'`/])(?P<url>https?://[^\s<>()\[\]`]+[^\s<>()\[\]`.,;:])")
ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|obj|exc|const|type):`(?P<tilde>~?)(?P<target>[\w.]+)`")


def _identifier(obj: griffe.Object, target: str) -> str | None:
    """The full dotted path of ``target`` as seen from ``obj``'s scope, or None."""
    if target.startswith("torchzero."):
        return target
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except Exception:  # griffe.NameResolutionError, or a scope that cannot resolve
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _rewrite(obj: griffe.Object, text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        target = m["target"]
        title = target.rsplit(".", 1)[-1] if m["tilde"] else target
        ident = _identifier(obj, target)
        if ident is None:
            return f"`{title}`"
        return f'<autoref identifier="{html.escape(ident)}" optional><code>{html.escape(title)}</code></autoref>'

    text = EXAMPLE_HEADER.sub(r"\g<indent>Examples:", ROLE.sub(repl, text))
    text = DEFAULT_NOTE.sub("", text)
    return URL.sub(r"<\g<url>>", text)


#: Related names for each class's "See also" box on the site (names in ``tz.m``).
SEE_ALSO: dict[str, tuple[str, ...]] = {
    "ClipValue": ("ClipNorm", "ClipValueByEMA", "ClipValueGrowth", "clip_grad_value_"),
    "ClipNorm": ("Normalize", "ClipValue", "ClipNormByEMA", "AGC", "clip_grad_norm_"),
    "Normalize": ("ClipNorm", "NormalizeByEMA", "normalize_grads_"),
    "Centralize": ("Normalize", "ClipNorm"),
    "ClipNormByEMA": ("NormalizeByEMA", "ClipNorm", "ClipNormGrowth", "AutoClip"),
    "NormalizeByEMA": ("ClipNormByEMA", "Normalize"),
    "ClipValueByEMA": ("ClipValue", "ClipValueGrowth", "SpikeClip"),
    "ClipValueGrowth": ("ClipNormGrowth", "ClipValueByEMA"),
    "ClipNormGrowth": ("ClipValueGrowth", "ClipNormByEMA"),
    "AGC": ("ClipNorm", "AutoClip"),
    "AutoClip": ("ZClip", "ClipNormByEMA", "AGC"),
    "ZClip": ("AutoClip", "SkipOnSpike", "SpikeClip"),
    "SpikeClip": ("ZClip", "ClipValueByEMA"),
    "SkipNonFinite": ("SkipOnSpike",),
    "SkipOnSpike": ("SkipNonFinite", "ZClip"),
    "Adam": ("RMSprop", "Adan", "Lion", "Debias", "WeightDecay", "LR"),
    "RMSprop": ("Adam", "Adagrad", "HeavyBall"),
    "Adagrad": ("RMSprop", "Adam"),
    "Lion": ("Adam", "Sign", "Cautious"),
    "Adan": ("Adam", "NAG"),
    "Rprop": ("Sign", "Adam"),
    "Orthogonalize": ("Graft", "Adam"),
    "EMA": ("HeavyBall", "NAG", "Debias"),
    "HeavyBall": ("NAG", "EMA"),
    "NAG": ("HeavyBall", "EMA"),
    "Debias": ("Adam", "EMA"),
    "Cautious": ("Adam", "Lion"),
    "LR": ("StepSize", "Warmup"),
    "StepSize": ("LR",),
    "Warmup": ("LR", "WarmupNormClip"),
    "WarmupNormClip": ("Warmup", "ClipNorm"),
    "WeightDecay": ("DirectWeightDecay", "Adam"),
    "DirectWeightDecay": ("WeightDecay",),
    "Graft": ("Orthogonalize", "Normalize"),
    "Sign": ("Lion", "Rprop"),
    "Wrap": ("Split", "Alternate"),
    "Split": ("Alternate", "Wrap"),
    "Alternate": ("Split", "Multistep"),
    "Multistep": ("Alternate", "GradientAccumulation"),
    "GradientAccumulation": ("Multistep",),
}


def _see_also(obj: griffe.Object) -> str:
    """An admonition linking the names related to ``obj`` (optional links: never a build warning)."""
    import torchzero as tz

    links = []
    for name in SEE_ALSO.get(obj.name, ()):
        target = getattr(tz.m, name, None)
        if target is None:
            continue
        family = target.__module__.split(".")[2]
        ident = f"torchzero.modules.{family}.{name}"
        links.append(f'<autoref identifier="{ident}" optional><code>{name}</code></autoref>')
    return "\n\n!!! tip \"See also\"\n    " + ", ".join(links) if links else ""


def _walk(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
        if obj.is_class and obj.name in SEE_ALSO and "See also" not in obj.docstring.value:
            obj.docstring.value += _see_also(obj)
    for member in obj.members.values():
        if not member.is_alias and member.parent is obj:
            _walk(member)  # type: ignore[arg-type]


class TorchzeroDocstrings(griffe.Extension):
    """Rewrites the docstrings of a module and all its members once they are loaded."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.docstring is not None:
            mod.docstring.value = _rewrite(mod, mod.docstring.value)
        for member in mod.members.values():
            if not member.is_alias and not member.is_module:
                _walk(member)  # type: ignore[arg-type]
