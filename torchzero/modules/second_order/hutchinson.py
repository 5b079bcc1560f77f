"""``AdaHessian`` and ``SophiaH``: per-coordinate scaling by Hutchinson's estimate of the
Hessian's diagonal, from Hessian-vector products through the closure."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.module import Module
from ...core.var import Var
from ...functional.hessian import hutchinson_diagonal
from ...utils.validation import MAX_ITERATIONS, check_int, check_number
from .graph import check_params, gradients_with_graph

__all__ = ["AdaHessian", "SophiaH"]


class _HutchinsonModule(Module):
    """Shared: settings checks, the seeded generator kept in the state, and the diagonal."""

    STATE_KEYS = {"exp_avg": "like_param", "hess": "like_param"}
    USES_LOSS_GRAPH = True

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        for key in ("beta1", "beta2"):
            if key in s:
                check_number(key, s[key], owner=o, min=0.0, max=1.0, max_inclusive=False)
        if "eps" in s:
            check_number("eps", s["eps"], owner=o, min=0.0, min_inclusive=False)
        for key in ("update_freq", "n_samples"):
            if key in s:
                check_int(key, s[key], owner=o, min=1, max=MAX_ITERATIONS)
        if "seed" in s:
            check_int("seed", s["seed"], owner=o, min=0, max=2**63 - 1)

    def _buffers(self, params: list[Tensor], like: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """The per-parameter averages of the gradient and of the diagonal (zeros at first)."""
        for p, u in zip(params, like):
            st = self.state[p]
            if "exp_avg" not in st:
                st["exp_avg"], st["hess"] = torch.zeros_like(u), torch.zeros_like(u)
        return [self.state[p]["exp_avg"] for p in params], [self.state[p]["hess"] for p in params]

    def _diagonal(self, var: Var, n_samples: int, seed: int) -> list[Tensor]:
        gs = self.global_state
        gen = torch.Generator()
        if "rng_state" in gs:
            gen.set_state(gs["rng_state"])
        else:
            gen.manual_seed(seed)
        _, grads = gradients_with_graph(type(self).__name__, var)
        diag = hutchinson_diagonal(grads, var.params, gen, n_samples)
        gs["rng_state"] = gen.get_state()  # saved with the optimizer: the same draws after a resume
        return diag


class AdaHessian(_HutchinsonModule):
    r"""AdaHessian: Adam with the squared gradient replaced by the squared Hutchinson estimate
    $D$ of the Hessian's diagonal (Yao et al., 2021, Algorithm 1):

    $$
    m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) D^2,\quad
    u = \frac{m / (1-\beta_1^t)}{\big(v/(1-\beta_2^t)\big)^{k/2} + \epsilon}
    $$

    with $D = z \odot Hz$ averaged over ``n_samples`` Rademacher vectors $z$, made every
    ``update_freq`` steps (the last $D$ is reused between), $k$ = ``hessian_power``. Follow it
    with ``tz.m.LR(lr)`` (the paper uses 0.15). Each estimate evaluates the loss once more
    (``closure(False)``) and makes ``n_samples`` Hessian-vector products; the random vectors come
    from a generator seeded with ``seed``, saved with the optimizer, and the same on every rank
    (the products are averaged over ranks under data parallelism).

    Args:
        beta1: the gradient's averaging (default: ``0.9``).
        beta2: the squared diagonal's averaging (default: ``0.999``).
        eps: added to the denominator (default: ``1e-4``).
        hessian_power: $k$, in ``[0, 1]`` (default: ``1``).
        update_freq: steps between estimates of $D$ (default: ``1``).
        n_samples: products per estimate (default: ``1``).
        seed: the random vectors' seed (default: ``0``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> x, y = torch.randn(64, 4), torch.randn(64, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.AdaHessian(), tz.m.LR(0.1))
        >>> def closure(backward=True):
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> first = float(closure(False).detach())
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> float(closure(False).detach()) < first
        True

    References:
        Yao, Z., Gholami, A., Shen, S., Mustafa, M., Keutzer, K., & Mahoney, M. (2021).
        ADAHESSIAN: An adaptive second order optimizer for machine learning. AAAI.
    """

    OPTIONAL_STATE_KEYS = {"diag": "like_param"}

    def __init__(
        self,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-4,
        hessian_power: float = 1.0,
        update_freq: int = 1,
        n_samples: int = 1,
        seed: int = 0,
    ):
        super().__init__(dict(beta1=beta1, beta2=beta2, eps=eps, hessian_power=hessian_power, update_freq=update_freq, n_samples=n_samples, seed=seed))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "hessian_power" in s:
            check_number("hessian_power", s["hessian_power"], owner="AdaHessian", min=0.0, max=1.0)

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        s = self.settings_list(var.params).coupled(self.defaults, "AdaHessian")
        check_params("AdaHessian", var.params)
        gs = self.global_state
        t = gs.get("step", 0) + 1
        if (t - 1) % s["update_freq"] == 0 or any("diag" not in self.state[p] for p in var.params):
            for p, d in zip(var.params, self._diagonal(var, s["n_samples"], s["seed"])):
                self.state[p]["diag"] = d.detach()  # kept for the steps until the next estimate
        gs["step"] = t
        diag = [self.state[p]["diag"] for p in var.params]
        update = var.get_update()
        b1, b2, eps, k = float(s["beta1"]), float(s["beta2"]), float(s["eps"]), float(s["hessian_power"])
        exp_avg, hess = self._buffers(var.params, update)
        torch._foreach_lerp_(exp_avg, update, 1 - b1)
        torch._foreach_mul_(hess, b2)
        torch._foreach_addcmul_(hess, diag, diag, value=1 - b2)
        denom = torch._foreach_div(hess, 1 - b2**t)
        torch._foreach_pow_(denom, k / 2)
        torch._foreach_add_(denom, eps)
        var.update = torch._foreach_div(exp_avg, 1 - b1**t)
        torch._foreach_div_(var.update, denom)
        return var


class SophiaH(_HutchinsonModule):
    r"""Sophia with Hutchinson's estimator (Liu et al., 2023, Algorithm 1 with the estimator of
    their Algorithm 2): a clipped, diagonally preconditioned momentum,

    $$
    m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
    u = \operatorname{clip}\Big(\frac{m}{\max(\gamma h, \epsilon)}, -1, 1\Big)
    $$

    where every ``update_freq`` steps (10 in the paper) $h \leftarrow \beta_2 h + (1-\beta_2)\hat h$
    with $\hat h = z \odot Hz$ for a Rademacher $z$ (averaged over ``n_samples``). Follow it with
    ``tz.m.LR(lr)``; the paper's decoupled weight decay is a separate module after it. The
    random vectors are seeded, saved with the optimizer and the same on every rank, as in
    :class:`AdaHessian`.

    Args:
        beta1: the gradient's averaging (default: ``0.96``).
        beta2: the diagonal's averaging (default: ``0.99``).
        gamma: $\gamma$, the preconditioner's scale (default: ``0.01``).
        eps: the least denominator (default: ``1e-12``).
        update_freq: steps between estimates of $h$ (default: ``10``).
        n_samples: products per estimate (default: ``1``).
        seed: the random vectors' seed (default: ``0``).

    Example:
        >>> import torch, torchzero as tz
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        >>> x, y = torch.randn(64, 4), torch.randn(64, 1)
        >>> opt = tz.Modular(model.parameters(), tz.m.SophiaH(), tz.m.LR(1e-2))
        >>> def closure(backward=True):
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> first = float(closure(False).detach())
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> float(closure(False).detach()) < first
        True

    References:
        Liu, H., Li, Z., Hall, D., Liang, P., & Ma, T. (2023). Sophia: A scalable stochastic
        second-order optimizer for language model pre-training. arXiv:2305.14342.
    """

    def __init__(
        self,
        beta1: float = 0.96,
        beta2: float = 0.99,
        gamma: float = 0.01,
        eps: float = 1e-12,
        update_freq: int = 10,
        n_samples: int = 1,
        seed: int = 0,
    ):
        super().__init__(dict(beta1=beta1, beta2=beta2, gamma=gamma, eps=eps, update_freq=update_freq, n_samples=n_samples, seed=seed))

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        super().validate_settings(s)
        if "gamma" in s:
            check_number("gamma", s["gamma"], owner="SophiaH", min=0.0, min_inclusive=False)

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        s = self.settings_list(var.params).coupled(self.defaults, "SophiaH")
        check_params("SophiaH", var.params)
        gs = self.global_state
        t = gs.get("step", 0) + 1
        b1, b2 = float(s["beta1"]), float(s["beta2"])
        diag = self._diagonal(var, s["n_samples"], s["seed"]) if (t - 1) % s["update_freq"] == 0 else None
        gs["step"] = t
        update = var.get_update()
        exp_avg, hess = self._buffers(var.params, update)
        if diag is not None:
            torch._foreach_mul_(hess, b2)
            torch._foreach_add_(hess, [d.detach() for d in diag], alpha=1 - b2)
        torch._foreach_lerp_(exp_avg, update, 1 - b1)
        denom = torch._foreach_mul(hess, float(s["gamma"]))
        torch._foreach_clamp_min_(denom, float(s["eps"]))
        var.update = torch._foreach_div(exp_avg, denom)
        torch._foreach_clamp_min_(var.update, -1.0)
        torch._foreach_clamp_max_(var.update, 1.0)
        return var
