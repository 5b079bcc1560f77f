r"""Gradient estimates from values of the loss: finite differences along coordinates or along
random directions, and the seeded directions they use.

The loss is given as ``f()``, a function of no argument that evaluates the loss at the
parameters as they are (the estimators move the parameters in place and put them back bit for
bit). The random directions $z$ all have $\mathbb{E}[z z^T] = I$, so that the estimate
$\hat g = \frac{1}{S}\sum_s \delta_s z_s$ of a directional difference quotient $\delta_s \approx
\nabla f \cdot z_s$ has $\mathbb{E}[\hat g] \approx \nabla f$.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

__all__ = [
    "FORMULAS",
    "DISTRIBUTIONS",
    "normalize_formula",
    "sample_seed",
    "generators",
    "iter_direction",
    "random_direction",
    "difference_quotient",
    "fd_gradient",
    "randomized_gradient",
    "mezo_gradient",
    "directional_derivative",
]

#: Difference formulas: $(f(x+h) - f(x))/h$, $(f(x) - f(x-h))/h$, $(f(x+h) - f(x-h))/2h$.
FORMULAS = ("forward", "backward", "central")

#: torchzero 0.3.x's names of the same formulas.
FORMULA_ALIASES = {"forward2": "forward", "backward2": "backward", "central2": "central"}

#: Distributions of the random directions: entries $\pm 1$; standard normal; uniform on the
#: sphere of radius $\sqrt{n}$.
DISTRIBUTIONS = ("rademacher", "gaussian", "sphere")

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 63) - 1


def normalize_formula(formula: object) -> object:
    """``formula`` with torchzero 0.3.x's names (``"central2"``) mapped to ours."""
    return FORMULA_ALIASES.get(formula, formula) if isinstance(formula, str) else formula


def sample_seed(seed: int, step: int, sample: int) -> int:
    """The seed of direction ``sample`` of step ``step`` for a base ``seed``: well apart for
    neighbouring steps and samples (a SplitMix64 finalizer), a pure function of the three."""
    z = (seed + _GOLDEN * (step * 1_000_003 + sample + 1)) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


def generators(params: list[Tensor], seed: int) -> dict[torch.device, torch.Generator]:
    """One generator per device of ``params``, each seeded with ``seed``."""
    out: dict[torch.device, torch.Generator] = {}
    for p in params:
        if p.device not in out:
            out[p.device] = torch.Generator(device=p.device).manual_seed(seed)
    return out


def iter_direction(params: list[Tensor], seed: int, distribution: str) -> Iterator[Tensor]:
    """The parts of a ``"rademacher"`` or ``"gaussian"`` direction, one parameter at a time, in
    order: the same ``seed`` gives the same parts, so a direction can be made again instead of
    kept (MeZO)."""
    gens = generators(params, seed)
    for p in params:
        gen = gens[p.device]
        if distribution == "rademacher":  # drawn in place in p's dtype: no integer temporary
            yield torch.empty(p.shape, device=p.device, dtype=p.dtype).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)
        else:
            yield torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)


def random_direction(params: list[Tensor], seed: int, distribution: str) -> list[Tensor]:
    r"""A random direction shaped like ``params``, drawn from generators seeded with ``seed``
    (the same ``seed`` gives the same direction), with $\mathbb{E}[z z^T] = I$:

    - ``"rademacher"``: independent $\pm 1$ entries;
    - ``"gaussian"``: independent standard normal entries;
    - ``"sphere"``: uniform on the sphere $\lVert z\rVert_2 = \sqrt{n}$ ($n$ elements in all).
    """
    out = list(iter_direction(params, seed, "gaussian" if distribution == "sphere" else distribution))
    if distribution == "sphere":
        n = sum(z.numel() for z in out)
        norm = math.sqrt(sum(float(z.double().pow(2).sum()) for z in out))
        if norm > 0:
            torch._foreach_mul_(out, math.sqrt(n) / norm)
    return out


def difference_quotient(f_plus: float | None, f_0: float | None, f_minus: float | None, h: float, formula: str) -> float:
    """The directional difference quotient of ``formula`` from the values it uses."""
    if formula == "forward":
        return (f_plus - f_0) / h  # type: ignore[operator]
    if formula == "backward":
        return (f_0 - f_minus) / h  # type: ignore[operator]
    return (f_plus - f_minus) / (2 * h)  # type: ignore[operator]


def _loss_estimate(f_plus: list[float], f_0: float | None, f_minus: list[float]) -> float:
    """$f(x)$ when it was evaluated, else the mean of the central pairs (an $O(h^2)$ estimate)."""
    if f_0 is not None:
        return f_0
    values = f_plus + f_minus
    return sum(values) / len(values) if values else math.nan


def _moved(x: Tensor, h: float) -> Tensor:
    """``x + h``, or the next representable number past ``x`` if ``h`` is below its spacing."""
    y = x + h
    if bool(y == x):
        y = torch.nextafter(x, torch.full_like(x, math.inf if h > 0 else -math.inf))
    return y


@torch.no_grad()
def fd_gradient(f: Callable[[], float], params: list[Tensor], h: float, formula: str) -> tuple[list[Tensor], float]:
    r"""The gradient by finite differences along each coordinate: $g_j = (f(x + h e_j) - f(x)) / h$
    (``"forward"``), $(f(x) - f(x - h e_j)) / h$ (``"backward"``) or
    $(f(x + h e_j) - f(x - h e_j)) / 2h$ (``"central"``), with $h$ the step actually
    representable at $x_j$. Errors are $O(h)$, $O(h)$ and $O(h^2)$; $n$ or $2n$ evaluations (plus
    one at $x$ for the one-sided formulas).

    Returns:
        ``(gradient, loss)``: the loss is $f(x)$ for the one-sided formulas, and the mean of the
        central values otherwise.
    """
    f_0 = f() if formula != "central" else None
    grads = [torch.zeros_like(p) for p in params]
    plus: list[float] = []
    minus: list[float] = []
    for p, g in zip(params, grads):
        flat_g = g.view(-1)
        for j in range(p.numel()):
            idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(j), p.shape)) if p.dim() else ()
            x = p[idx].clone()
            fp = fm = None
            hp = hm = 0.0
            try:
                if formula in ("forward", "central"):
                    p[idx] = _moved(x, h)
                    hp = float(p[idx] - x)
                    fp = f()
                    plus.append(fp)
                if formula in ("backward", "central"):
                    p[idx] = _moved(x, -h)
                    hm = float(x - p[idx])
                    fm = f()
                    minus.append(fm)
            finally:
                p[idx] = x
            if formula == "forward":
                flat_g[j] = (fp - f_0) / hp  # type: ignore[operator]
            elif formula == "backward":
                flat_g[j] = (f_0 - fm) / hm  # type: ignore[operator]
            else:
                flat_g[j] = (fp - fm) / (hp + hm)  # type: ignore[operator]
    return grads, _loss_estimate(plus, f_0, minus)


@torch.no_grad()
def randomized_gradient(
    f: Callable[[], float],
    params: list[Tensor],
    h: float,
    formula: str,
    seeds: list[int],
    distribution: str,
) -> tuple[list[Tensor], float]:
    r"""$\hat g = \frac{1}{S}\sum_{s} \delta_s z_s$ over directions $z_s$ drawn from ``seeds``
    (:func:`random_direction`), with $\delta_s$ the difference quotient of ``formula`` along
    $z_s$ (one or two evaluations per direction, plus one at $x$ for the one-sided formulas).
    The parameters are put back from a copy, bit for bit.

    On a quadratic, $\mathbb{E}[\hat g] = \nabla f$ for ``"central"`` (any $h$) and for the
    Gaussian directions with ``"forward"`` (the gradient of the Gaussian smoothing of $f$, which
    differs from $f$ by a constant); the variance falls as $1/S$.

    Returns:
        ``(estimate, loss)``, the loss as in :func:`fd_gradient`.
    """
    x0 = [p.detach().clone() for p in params]
    f_0 = f() if formula != "central" else None
    estimate = [torch.zeros_like(p) for p in params]
    plus: list[float] = []
    minus: list[float] = []
    try:
        for seed in seeds:
            z = random_direction(params, seed, distribution)
            fp = fm = None
            if formula in ("forward", "central"):
                torch._foreach_add_(params, z, alpha=h)
                fp = f()
                plus.append(fp)
                torch._foreach_copy_(params, x0)
            if formula in ("backward", "central"):
                torch._foreach_add_(params, z, alpha=-h)
                fm = f()
                minus.append(fm)
                torch._foreach_copy_(params, x0)
            d = difference_quotient(fp, f_0, fm, h, formula)
            torch._foreach_add_(estimate, z, alpha=d / len(seeds))
    finally:
        torch._foreach_copy_(params, x0)
    return estimate, _loss_estimate(plus, f_0, minus)


@torch.no_grad()
def mezo_gradient(
    f: Callable[[], float], params: list[Tensor], h: float, seeds: list[int], distribution: str
) -> tuple[list[Tensor], float]:
    r"""The central estimate of :func:`randomized_gradient` made as MeZO makes it (Malladi et
    al., 2023, Algorithm 1): the direction $z$ is never stored. The parameters move to
    $x + hz$, then $x - hz$, then back, each part of $z$ made again from its seed
    (:func:`iter_direction`) one parameter at a time, so the memory beyond the parameters is
    the estimate and one parameter's part of $z$. Putting the parameters back by
    $+hz$ is exact up to rounding (about $h \cdot$ an ulp of $z$), not bit for bit.

    Returns:
        ``(estimate, loss)``: the loss is the mean of $f(x \pm hz)$.
    """

    def move(seed: int, alpha: float) -> None:
        for p, z in zip(params, iter_direction(params, seed, distribution)):
            p.add_(z, alpha=alpha)

    estimate: list[Tensor] | None = None  # made from the first direction itself: no zeros, no copy
    values: list[float] = []
    for seed in seeds:
        offset = 0.0  # where the parameters are: x + offset * z
        try:
            move(seed, h)
            offset = h
            fp = f()
            move(seed, -2 * h)
            offset = -h
            fm = f()
        finally:
            if offset:
                move(seed, -offset)
        values += [fp, fm]
        d = (fp - fm) / (2 * h) / len(seeds)
        if estimate is None:
            estimate = [z.mul_(d) for z in iter_direction(params, seed, distribution)]
        else:
            for e, z in zip(estimate, iter_direction(params, seed, distribution)):
                e.add_(z, alpha=d)
    assert estimate is not None
    return estimate, sum(values) / len(values)


def directional_derivative(loss_fn: Callable[[], Tensor], params: list[Tensor], tangent: list[Tensor]) -> tuple[float, float]:
    r"""$(f(x), \nabla f(x) \cdot v)$ by forward-mode automatic differentiation, in one
    evaluation of the loss and without a backward pass: within a dual level the parameters
    become dual tensors with tangent $v$ (in place, values unchanged), ``loss_fn()`` is
    evaluated, and the tangent of its result is the directional derivative. Every op of the
    loss must have a forward-mode rule (PyTorch's built-in layers and functions do)."""
    import torch.autograd.forward_ad as fwAD

    with torch.no_grad(), fwAD.dual_level():
        for p, t in zip(params, tangent):
            p.copy_(fwAD.make_dual(p.detach().clone(), t))
        out = loss_fn()
        if not isinstance(out, Tensor):
            raise TypeError(f"ForwardGradient: the closure must return the loss as a tensor, got {out!r:.80}")
        primal, derivative = fwAD.unpack_dual(out)
        value = float(primal.detach().reshape(()))
        jvp = 0.0 if derivative is None else float(derivative.reshape(()))
    return value, jvp
