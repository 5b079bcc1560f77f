"""``GradientEstimator``: the base of the modules that form the gradient from values of the loss."""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ...core.capabilities import Capabilities
from ...core.module import Module
from ...core.var import Var
from ...functional.zeroth_order import FORMULAS, normalize_formula, sample_seed
from ...utils.validation import MAX_ITERATIONS, check_choice, check_int, check_number
from ..line_search.line_search import _global_mean
from ..second_order.graph import check_params

__all__ = ["GradientEstimator"]


def _shared_seed() -> int:
    """A fresh base seed from torch's global generator, rank 0's under data parallelism."""
    seed = torch.randint(0, 2**62, (), dtype=torch.int64)
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(seed, 0)
    return int(seed)


class GradientEstimator(Module):
    r"""A module that estimates the gradient from evaluations of the loss, ``closure(False)``,
    instead of a backward pass: the first module of a chain, whose other modules then work on
    the estimate as on a gradient (``tz.Modular(params, tz.m.SPSA(), tz.m.Adam(), tz.m.LR(1e-3))``).

    ``Modular`` calls no closure of its own for such a chain: every parameter that requires a
    gradient takes part, whether or not it has a ``.grad``, and ``step(closure)`` returns the
    loss the estimator reports. The closure is called with ``backward=False`` and must return
    the loss; it need not call ``backward()`` ever. Under data parallelism each rank's loss is
    averaged over the ranks and the random directions come from the same seed on every rank, so
    every rank forms the same estimate.

    The random directions come from ``seed`` (drawn from torch's global generator at the first
    step when ``None``; rank 0's under data parallelism) and the step count, both kept in
    ``global_state`` and saved with the optimizer, so a resumed run draws what the uninterrupted
    one would have. A subclass implements :meth:`estimate`.

    Example:
        An estimator along the coordinate axes in turn, one forward difference per step:

        >>> import torch, torchzero as tz
        >>> class AxisFD(tz.m.GradientEstimator):
        ...     def __init__(self, h=1e-4):
        ...         super().__init__(dict(h=h, seed=0))
        ...     def estimate(self, var, settings, seeds):
        ...         f, (p,) = self.loss_fn(var), var.params
        ...         j, h = self.global_state["step"] % p.numel(), settings["h"]
        ...         f0 = f()
        ...         p.view(-1)[j] += h
        ...         f1 = f()
        ...         p.view(-1)[j] -= h
        ...         g = torch.zeros_like(p)
        ...         g.view(-1)[j] = (f1 - f0) / h * p.numel()
        ...         return [g], f0
        >>> x = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
        >>> opt = tz.Modular([x], AxisFD(), tz.m.LR(0.25))
        >>> for _ in range(40):
        ...     loss = opt.step(lambda backward=True: (x ** 2).sum())
        >>> float(loss) < 1e-6
        True
    """

    CAPABILITIES = Capabilities(estimates_grad=True)

    def normalize_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().normalize_settings(settings)
        if "formula" in out:  # torchzero 0.3.x's names ("central2") as ours
            out["formula"] = normalize_formula(out["formula"])
        return out

    def validate_settings(self, s: Mapping[str, Any]) -> None:
        o = type(self).__name__
        if "formula" in s:
            check_choice("formula", s["formula"], FORMULAS, owner=o)
        if "h" in s:
            check_number("h", s["h"], owner=o, min=0.0, min_inclusive=False)
        if "n_samples" in s:
            check_int("n_samples", s["n_samples"], owner=o, min=1, max=MAX_ITERATIONS)
        if s.get("seed") is not None:
            check_int("seed", s["seed"], owner=o, min=0, max=2**63 - 1)

    @abstractmethod
    def estimate(self, var: Var, settings: Mapping[str, Any], seeds: list[int]) -> tuple[list[Tensor], float]:
        """``(gradient estimate, loss)`` at ``var``'s parameters, from the directions of ``seeds``
        (one per sample)."""

    def loss_fn(self, var: Var) -> Callable[[], float]:
        """The loss at the parameters as they are, as a number averaged over the ranks."""
        closure = var.closure
        name = type(self).__name__

        def f() -> float:
            value = closure(False)  # type: ignore[misc]
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise TypeError(f"{name}: the closure must return the loss as one number, got a tensor of shape {tuple(value.shape)}")
                value = value.detach()
            elif not isinstance(value, (int, float)):
                raise TypeError(f"{name}: the closure must return the loss, got {value!r:.80}")
            return _global_mean(float(value))

        return f

    def seeds(self, settings: Mapping[str, Any], n: int) -> list[int]:
        """This step's ``n`` direction seeds; advances the step count."""
        gs = self.global_state
        if "seed" not in gs:
            gs["seed"] = _shared_seed() if settings["seed"] is None else int(settings["seed"])
            gs["step"] = 0
        seed, step = gs["seed"], gs.get("step")
        if not isinstance(seed, int) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{type(self).__name__}: the loaded global state has seed={seed!r}, step={step!r}; both must be integers >= 0")
        gs["step"] = step + 1
        return [sample_seed(seed, step, k) for k in range(n)]

    def step(self, var: Var) -> Var:
        if not var.params:
            return var
        name = type(self).__name__
        check_params(name, var.params)
        s = self.settings_list(var.params).coupled(self.defaults, name)
        grads, loss = self.estimate(var, s, self.seeds(s, int(s.get("n_samples", 1))))
        var.grad = grads
        var.loss = torch.tensor(loss, dtype=torch.float64)
        return var
