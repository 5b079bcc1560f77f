r"""Hessian-vector products and Hessians of a loss with respect to a list of tensors (stateless).

Two ways to a product $H v$:

- **autograd** (:func:`hvp`): differentiate $g \cdot v$ again, from gradients made with
  ``create_graph=True``: exact, one extra backward pass per product;
- **finite differences** (:func:`fd_hvp`): $H v \approx (g(x + h v) - g(x - h v)) / 2h$
  (``"central"``) or $(g(x + h v) - g(x)) / h$ (``"forward"``), for closures whose graph
  can't be differentiated twice. The step is relative: $h$ divided by $\lVert v\rVert$.

:func:`hessian` builds the dense matrix of all tensors flattened together, row by row or in one
batched (vmapped) backward pass.

References:
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation,
    6(1), 147-160.

    Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 8.1
    (finite-difference Hessian-vector products).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["hvp", "fd_hvp", "hessian", "all_reduce_mean_", "rademacher_like", "hutchinson_diagonal"]


def all_reduce_mean_(tensors: Sequence[Tensor]) -> None:
    """Averages ``tensors`` in place over the ranks of the default process group (nothing
    without one): under data parallelism each rank differentiates its own batch's loss, and an
    autograd product, unlike ``backward()``, isn't reduced by DDP."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    for t in tensors:
        dist.all_reduce(t)
        t.div_(world)


def hvp(grads: Sequence[Tensor], params: Sequence[Tensor], v: Sequence[Tensor], retain_graph: bool = True) -> list[Tensor]:
    r"""$H v$ by differentiating $\sum_i g_i \cdot v_i$ with respect to ``params``.

    Args:
        grads: $\nabla f$ at the parameters, computed with ``create_graph=True``.
        params: the tensors the gradients are of.
        v: the vector, one tensor per parameter.
        retain_graph: keep the graph for more products (default: ``True``).

    Returns:
        One tensor per parameter (zeros where the gradient doesn't depend on it).

    Example:
        >>> import torch
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> (g,) = torch.autograd.grad((x[0] ** 2 * x[1]), x, create_graph=True)
        >>> hvp([g], [x], [torch.tensor([1.0, 0.0])])
        [tensor([4., 2.])]
    """
    pairs = [(g, t) for g, t in zip(grads, v) if g.requires_grad]  # a gradient that is constant: no curvature
    if not pairs:
        return [torch.zeros_like(p) for p in params]
    out = torch.autograd.grad([g for g, _ in pairs], list(params), grad_outputs=[t for _, t in pairs], retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if o is None else o.detach() for o, p in zip(out, params)]


def fd_hvp(
    grad_at: Callable[[], list[Tensor]],
    params: Sequence[Tensor],
    v: Sequence[Tensor],
    h: float = 1e-3,
    formula: str = "central",
    g0: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    r"""$H v$ by finite differences of gradients, with the parameters moved in place and put
    back (bit for bit: they are restored from a copy).

    Args:
        grad_at: returns the gradients at the current parameters (it is called with the
            parameters moved).
        params: the parameters (leaf tensors, moved in place without autograd).
        v: the vector, one tensor per parameter.
        h: the step along $v / \lVert v\rVert$ (default: ``1e-3``).
        formula: ``"central"`` (two gradients, error $O(h^2)$) or ``"forward"`` (one more
            gradient, from ``g0``, error $O(h)$) (default: ``"central"``).
        g0: the gradient at the parameters, for ``"forward"``.

    Returns:
        One tensor per parameter; zeros when $v = 0$.

    Example:
        >>> import torch
        >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> def grad_at():
        ...     return list(torch.autograd.grad(x[0] ** 2 * x[1], x))
        >>> [t.round(decimals=6) for t in fd_hvp(grad_at, [x], [torch.tensor([1.0, 0.0], dtype=torch.float64)])]
        [tensor([4., 2.], dtype=torch.float64)]
    """
    if formula not in ("central", "forward"):
        raise ValueError(f"fd_hvp: formula must be 'central' or 'forward', got {formula!r}")
    norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in v)))  # type: ignore[arg-type]
    if norm == 0:
        return [torch.zeros_like(p) for p in params]
    step = h / norm
    x0 = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            torch._foreach_add_([p.data for p in params], list(v), alpha=step)
        g_plus = [g.detach().clone() for g in grad_at()]
        if formula == "central":
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in params], x0)
                torch._foreach_add_([p.data for p in params], list(v), alpha=-step)
            g_minus = [g.detach().clone() for g in grad_at()]
            return [(a - b) / (2 * step) for a, b in zip(g_plus, g_minus)]
        if g0 is None:
            raise ValueError("fd_hvp: formula='forward' needs g0, the gradient at the parameters")
        return [(a - b) / step for a, b in zip(g_plus, g0)]
    finally:
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in params], x0)


def hessian(grads: Sequence[Tensor], params: Sequence[Tensor], vectorize: bool = True) -> Tensor:
    r"""The $n \times n$ Hessian of all ``params`` flattened together (in order), from gradients
    made with ``create_graph=True``.

    With ``vectorize`` the $n$ products with the columns of $I$ run as one batched backward
    pass (``is_grads_batched``); when an operation of the graph has no batching rule, or without
    it, one backward pass per row.

    Example:
        >>> import torch
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> (g,) = torch.autograd.grad(x[0] ** 2 * x[1], x, create_graph=True)
        >>> hessian([g], [x])
        tensor([[4., 2.],
                [2., 0.]])
    """
    grads, params = list(grads), list(params)
    n = sum(p.numel() for p in params)
    with torch.enable_grad():  # the concatenation is part of the graph differentiated below
        flat = torch.cat([g.reshape(-1) for g in grads])
    dtype = flat.dtype
    if not flat.requires_grad:  # gradients that don't depend on the parameters: no curvature
        return torch.zeros(n, n, dtype=dtype, device=flat.device)

    def rows_of(out: Sequence[Tensor | None], batch: int | None) -> Tensor:
        parts = []
        for o, p in zip(out, params):
            shape = (batch, p.numel()) if batch is not None else (p.numel(),)
            parts.append(torch.zeros(shape, dtype=dtype, device=flat.device) if o is None else o.reshape(shape))
        return torch.cat(parts, dim=-1)

    if vectorize and n > 0:
        eye = torch.eye(n, dtype=dtype, device=flat.device)
        try:
            out = torch.autograd.grad(flat, params, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
            return rows_of(out, n).detach()
        except RuntimeError:
            pass  # no batching rule for an operation of the graph: row by row
    rows = []
    for i in range(n):
        e = torch.zeros(n, dtype=dtype, device=flat.device)
        e[i] = 1
        out = torch.autograd.grad(flat, params, grad_outputs=e, retain_graph=True, allow_unused=True)
        rows.append(rows_of(out, None))
    return torch.stack(rows).detach() if rows else torch.zeros(0, 0, dtype=dtype)


def rademacher_like(params: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """One vector of independent ±1 entries per parameter, drawn in order from ``generator``
    (on the CPU, then moved: the same numbers on every device and rank for the same state)."""
    out = []
    for p in params:
        z = torch.randint(0, 2, tuple(p.shape), generator=generator, dtype=torch.int8).to(device=p.device, dtype=p.dtype)
        out.append(z.mul_(2).sub_(1))
    return out


def hutchinson_diagonal(
    grads: Sequence[Tensor], params: Sequence[Tensor], generator: torch.Generator, n_samples: int = 1
) -> list[Tensor]:
    r"""Hutchinson's estimate of the Hessian's diagonal, $\frac1k\sum_{i=1}^{k} z_i \odot H z_i$ with
    Rademacher $z_i$ (unbiased: $E[z \odot Hz] = \operatorname{diag} H$), from gradients made with
    ``create_graph=True``; ``k`` = ``n_samples`` products. Under data parallelism each product is
    averaged over the ranks (the generator must be in the same state on all of them).

    Example:
        >>> import torch
        >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> (g,) = torch.autograd.grad((x**3).sum(), x, create_graph=True)  # diag H = 6x, off-diagonal 0
        >>> hutchinson_diagonal([g], [x], torch.Generator().manual_seed(0))
        [tensor([ 6., 12.], dtype=torch.float64)]
    """
    total: list[Tensor] | None = None
    for _ in range(n_samples):
        z = rademacher_like(params, generator)
        hz = hvp(grads, params, z)
        all_reduce_mean_(hz)
        est = [a * b for a, b in zip(z, hz)]
        total = est if total is None else [t.add_(e) for t, e in zip(total, est)]
    assert total is not None
    return [t.div_(n_samples) for t in total] if n_samples > 1 else total
