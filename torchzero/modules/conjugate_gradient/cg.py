"""Nonlinear conjugate gradient methods: the update is the gradient plus beta times the previous
update, with each method's beta."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.transform import Context, Settings, States, Transform
from ...functional.conjugate_gradient import BETAS, dot
from ...utils.validation import MAX_ITERATIONS, check_bool, check_int, check_number

__all__ = ["ConjugateGradient", "PolakRibiere", "FletcherReeves", "HestenesStiefel", "DaiYuan", "LiuStorey", "HagerZhang"]


class ConjugateGradient(Transform):
    r"""Nonlinear conjugate gradient with the $\beta$ of ``method`` (see
    :mod:`torchzero.functional.conjugate_gradient`); the named subclasses fix the method.

    All parameters are one vector. With $g$ the update this module receives (the gradient, or
    what earlier modules made of it) and $u'$ its previous output:

    $$
    u \leftarrow g + \beta\, u'
    $$

    that is, the search direction $p = -u$ is $-g + \beta p'$. $\beta = 0$ (a restart) on the
    first step, every ``reset_interval`` steps (``"auto"``: the number of elements plus one),
    when parameters without state appear, and with ``powell_restart`` $= \nu$ when
    $|g \cdot g'| \ge \nu\, g \cdot g$ (Powell's test, Nocedal & Wright eq. 5.52; $\nu = 0.1$ is
    usual), and when $u$ would not be a descent direction ($g \cdot u \le 0$, which an inexact
    line search allows). ``clip_beta`` uses $\max(\beta, 0)$. ``inner`` modules transform $g$ before the
    previous update is added ($\beta$ is computed from $g$ itself).

    Use it with a line search, ``StrongWolfe(c2=0.1)`` as Nocedal & Wright recommend; the
    first trial step ``a_init="first-order"`` suits CG's unscaled directions.

    The class attribute ``METHOD`` names the $\beta$ (a key of
    :data:`torchzero.functional.conjugate_gradient.BETAS`); the subclasses below set it.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` or ``None`` (default: ``None``).
        powell_restart: Powell's restart threshold $\nu$, or ``None`` (default: ``None``).
        inner: modules applied to $g$ before the previous update is added (default: ``None``).
    """

    METHOD = "polak_ribiere"
    STATE_KEYS = {"prev_grad": "like_param", "prev_dir": "like_param"}

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(dict(clip_beta=clip_beta, reset_interval=reset_interval, powell_restart=powell_restart), inner=inner)

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "clip_beta" in s:
            check_bool("clip_beta", s["clip_beta"], owner=o)
        r = s.get("reset_interval")
        if r is not None and r != "auto":
            if isinstance(r, str):
                raise ValueError(f"{o}: reset_interval must be a positive integer, 'auto' or None, got {r!r}")
            check_int("reset_interval", r, owner=o, min=1, max=MAX_ITERATIONS)
        if s.get("powell_restart") is not None:
            check_number("powell_restart", s["powell_restart"], owner=o, min=0.0, min_inclusive=False)

    def init_state(self, tensor: Tensor, setting: Mapping[str, Any]) -> dict[str, Any]:
        return {"prev_grad": tensor.clone(), "prev_dir": torch.zeros_like(tensor)}

    def update_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> None:
        s = settings.coupled(self.defaults, type(self).__name__)
        gs = self.global_state
        gs["step"] = gs.get("step", 0) + 1
        interval = s["reset_interval"]
        if interval == "auto":
            interval = sum(t.numel() for t in tensors) + 1
        g_prev, u_prev = states["prev_grad"], states["prev_dir"]
        restart = bool(ctx.new) or gs["step"] == 1 or (interval is not None and (gs["step"] - 1) % interval == 0)
        if restart:
            beta = torch.zeros(())
        else:
            beta = BETAS[self.METHOD](tensors, g_prev, torch._foreach_neg(u_prev))
            if s["clip_beta"]:
                beta = beta.clamp_min(0)
            gg = dot(tensors, tensors)
            if s["powell_restart"] is not None:
                beta = torch.where(dot(tensors, g_prev).abs() >= s["powell_restart"] * gg, torch.zeros_like(beta), beta)
            # not a descent direction (g . (g + beta u') <= 0, as an inexact line search allows):
            # restart along -g
            beta = torch.where(gg + beta * dot(tensors, u_prev) > 0, beta, torch.zeros_like(beta))
        gs["beta"] = beta
        torch._foreach_copy_(g_prev, tensors)

    def apply_tensors(self, tensors: list[Tensor], states: States, settings: Settings, ctx: Context) -> list[Tensor]:
        u_prev = states["prev_dir"]
        beta = self.global_state["beta"]
        torch._foreach_add_(tensors, torch._foreach_mul(u_prev, beta.to(tensors[0].dtype)))
        torch._foreach_copy_(u_prev, tensors)
        return tensors




class PolakRibiere(ConjugateGradient):
    r"""Polak–Ribière conjugate gradient: :class:`ConjugateGradient` with ``method="polak_ribiere"`` and $\beta$ clipped at 0 by default (PR+).

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``True``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.PolakRibiere(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Polak, E., & Ribière, G. (1969). Note sur la convergence de méthodes de directions conjuguées. Revue française d'informatique et de recherche opérationnelle, 3(16).

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 5.2.
    """

    METHOD = "polak_ribiere"

    def __init__(
        self,
        clip_beta: bool = True,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)


class FletcherReeves(ConjugateGradient):
    r"""Fletcher–Reeves conjugate gradient: :class:`ConjugateGradient` with ``method="fletcher_reeves"``.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.FletcherReeves(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Fletcher, R., & Reeves, C. M. (1964). Function minimization by conjugate gradients. The Computer Journal, 7(2).

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 5.2.
    """

    METHOD = "fletcher_reeves"

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)


class HestenesStiefel(ConjugateGradient):
    r"""Hestenes–Stiefel conjugate gradient: :class:`ConjugateGradient` with ``method="hestenes_stiefel"``.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.HestenesStiefel(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Hestenes, M. R., & Stiefel, E. (1952). Methods of conjugate gradients for solving linear systems. J. Res. Natl. Bur. Stand. 49(6).

        Nocedal, J., & Wright, S. J. (2006). Numerical Optimization (2nd ed.), Section 5.2.
    """

    METHOD = "hestenes_stiefel"

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)


class DaiYuan(ConjugateGradient):
    r"""Dai–Yuan conjugate gradient: :class:`ConjugateGradient` with ``method="dai_yuan"``.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.DaiYuan(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Dai, Y. H., & Yuan, Y. (1999). A nonlinear conjugate gradient method with a strong global convergence property. SIAM J. Optim. 10(1).
    """

    METHOD = "dai_yuan"

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)


class LiuStorey(ConjugateGradient):
    r"""Liu–Storey conjugate gradient: :class:`ConjugateGradient` with ``method="liu_storey"``.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.LiuStorey(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Liu, Y., & Storey, C. (1991). Efficient generalized conjugate gradient algorithms, part 1: theory. J. Optim. Theory Appl. 69.
    """

    METHOD = "liu_storey"

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)


class HagerZhang(ConjugateGradient):
    r"""Hager–Zhang conjugate gradient: :class:`ConjugateGradient` with ``method="hager_zhang"``.

    Args:
        clip_beta: use $\max(\beta, 0)$ (default: ``False``).
        reset_interval: restart every this many steps, ``"auto"`` (the number of elements plus
            one) or ``None`` (default: ``None``).
        inner: modules applied to the gradient before the previous update is added
            (default: ``None``).
        powell_restart: Powell's restart threshold, or ``None`` (default: ``None``).

    Example:
        >>> import torch, torchzero as tz
        >>> x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> A = torch.diag(torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], tz.m.HagerZhang(), tz.m.StrongWolfe(c2=0.1, a_init="first-order"))
        >>> def closure(backward=True):
        ...     loss = 0.5 * x @ A @ x
        ...     if backward:
        ...         opt.zero_grad()
        ...         loss.backward()
        ...     return loss
        >>> for _ in range(50):
        ...     _ = opt.step(closure)
        >>> bool(closure(False) < 1e-10)
        True

    References:
        Hager, W. W., & Zhang, H. (2005). A new conjugate gradient method with guaranteed descent and an efficient line search. SIAM J. Optim. 16(1).
    """

    METHOD = "hager_zhang"

    def __init__(
        self,
        clip_beta: bool = False,
        reset_interval: int | str | None = None,
        inner: Any = None,
        powell_restart: float | None = None,
    ):
        super().__init__(clip_beta, reset_interval, inner, powell_restart)
