"""Reference for PSGD Kron, transcribed from the author's standalone optimizer (X.-L. Li,
github.com/lixilinx/psgd_torch, ``simplest_standalone_psgd.py``: ``KWNS4``): per tensor,
momentum with beta_t = min(t/(t+1), momentum), the "Q0.5EQ1.5" fit of dense or diagonal
factors on the damped momentum (norm lower bounds by subspace iteration, a Procrustes step per
dense factor), the preconditioned momentum clipped by RMS and by element, balancing every 100
fits. Three module constants of the original are arguments (the preconditioner dtype, the
subspace dim, the relative damping), and its random draws come from ``generator_for(step,
index)`` instead of the global generator. Weight decay is left out. Independent of torchzero.
"""
from __future__ import annotations

import torch

TINY = 2.0**-126


def _bound(A, k, gen, spd=True):  # type: ignore[no-untyped-def]
    f = (A.diagonal().amax() if spd else A.abs().amax()) + TINY
    A = A / f
    V = torch.randn(k, A.shape[1], dtype=A.dtype, generator=gen)
    for _ in range(2):
        V = V @ A
        V /= torch.linalg.vector_norm(V, dim=1, keepdim=True) + TINY
        V = V @ A
    return f * torch.amax(torch.linalg.vector_norm(V, dim=1))


def _procrustes(Q, k, gen):  # type: ignore[no-untyped-def]
    R = Q.T - Q
    R /= _bound(R, k, gen, spd=False) + TINY
    RQ = R @ Q
    RRQ = R @ RQ
    a = torch.where(RRQ.diagonal().sum() < 0, torch.clamp(-RQ.diagonal().sum() / RRQ.diagonal().sum(), max=1 / 8), 1 / 8)
    Q.add_(a * (RQ + 0.5 * a * RRQ))


def _matrix(shape):  # type: ignore[no-untyped-def]
    dims = [s for s in shape if s != 1]
    if len(dims) <= 2:
        return dims
    total, best, ratio, left = 1, 1, float("inf"), 1
    for s in dims:
        total *= s
    for k in range(1, len(dims)):
        left *= dims[k - 1]
        r = max(left, total // left) / min(left, total // left)
        if r < ratio:
            ratio, best = r, k
    left = 1
    for s in dims[:best]:
        left *= s
    return [left, total // left]


class KronWhitenReference(torch.optim.Optimizer):
    def __init__(self, params, generator_for, lr=3e-4, max_size=float("inf"), max_skew=1.0, init_scale=1.0, lr_preconditioner=0.5,  # type: ignore[no-untyped-def]
                 betaL=0.9, damping=1e-9, momentum=0.9, nesterov=False, max_amps=(2.0, 10.0), update_probability=1.0,
                 dtype=torch.float32, subspace=32, relative_damping=2.0**-24):
        super().__init__(params, dict(lr=lr))
        self.o = dict(max_size=max_size, max_skew=max_skew, init_scale=init_scale, lr_p=lr_preconditioner, betaL=betaL, damping=damping,
                      momentum=momentum, nesterov=nesterov, max_amps=max_amps, prob=update_probability, dtype=dtype, k=subspace, rel=relative_damping)
        self.generator_for = generator_for
        self.t = 0

    def _init(self, shape):  # type: ignore[no-untyped-def]
        o = self.o
        if len(shape) <= 1:
            return [o["init_scale"] * torch.ones(shape, dtype=o["dtype"])]
        qs = []
        for n in shape:
            small = n <= 1 or n > o["max_size"] or n * n > o["max_skew"] * shape[0] * shape[1]
            qs.append(o["init_scale"] ** 0.5 * (torch.ones(n, dtype=o["dtype"]) if small else torch.eye(n, dtype=o["dtype"])))
        return qs

    @staticmethod
    def _apply(qs, G):  # type: ignore[no-untyped-def]
        if len(qs) == 1:
            return qs[0] * qs[0] * G
        Ql, Qr = qs
        if Ql.ndim == 2 and Qr.ndim == 2:
            return torch.linalg.multi_dot([Ql.T, Ql, G, Qr.T, Qr])
        if Ql.ndim == 2:
            return torch.linalg.multi_dot([Ql.T, Ql, G]) * (Qr * Qr)
        if Qr.ndim == 2:
            return (Ql * Ql)[:, None] * torch.linalg.multi_dot([G, Qr.T, Qr])
        return G * (Qr * Qr) * (Ql * Ql)[:, None]

    def _fit(self, qs, ls, G, gen):  # type: ignore[no-untyped-def]
        o = self.o
        Gd = G + (o["damping"] + o["rel"] * G.abs()) * torch.randn(G.shape, dtype=G.dtype, generator=gen)
        Pg = self._apply(qs, Gd)
        if len(qs) == 1:
            t1 = Pg * Pg
            ell = t1.amax() + 1
            ls[0].mul_(o["betaL"]).add_(ell, alpha=1 - o["betaL"]).clamp_(min=ell)
            qs[0].mul_(1 - o["lr_p"] / ls[0] * (t1 - 1))
            return
        m, n = G.shape
        for side in (0, 1):
            Q, other = qs[side], (n if side == 0 else m)
            if Q.ndim == 2:
                t1 = Pg @ Pg.T if side == 0 else Pg.T @ Pg
                ell = _bound(t1, o["k"], gen) + other
                ls[side].mul_(o["betaL"]).add_(ell, alpha=1 - o["betaL"]).clamp_(min=ell)
                t1 = t1 - other * torch.eye(t1.shape[0], dtype=t1.dtype)
                Q.sub_(o["lr_p"] / ls[side] * (t1 @ Q))
                _procrustes(Q, o["k"], gen)
            else:
                t1 = (Pg * Pg).sum(dim=1 - side)
                ell = t1.amax() + other
                ls[side].mul_(o["betaL"]).add_(ell, alpha=1 - o["betaL"]).clamp_(min=ell)
                Q.mul_(1 - o["lr_p"] / ls[side] * (t1 - other))

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        o, t, prb = self.o, self.t, self.o["prob"]
        fit = int(t * prb + 1) > int((t - 1) * prb + 1)
        balance = int(t * prb * 0.01) > int((t - 1) * prb * 0.01)
        for group in self.param_groups:
            for i, p in enumerate(group["params"]):
                st = self.state[p]
                g = p.grad.reshape(_matrix(p.shape))
                if not st:
                    st["ema"] = torch.zeros_like(g)
                    st["Q"] = self._init(list(g.shape))
                    st["L"] = [torch.zeros((), dtype=torch.float32) for _ in st["Q"]]
                beta = min(t / (t + 1), o["momentum"])
                st["ema"].lerp_(g, 1 - beta)
                M = (g.lerp(st["ema"], beta) if o["nesterov"] else st["ema"]).to(o["dtype"])
                if fit:
                    self._fit(st["Q"], st["L"], M, self.generator_for(t, i))
                h = self._apply(st["Q"], M)
                h *= torch.clamp(o["max_amps"][0] / (torch.linalg.vector_norm(h) * h.numel() ** -0.5), max=1.0)
                h.clamp_(min=-o["max_amps"][1], max=o["max_amps"][1])
                p.sub_(h.reshape(p.shape).to(p.dtype), alpha=group["lr"])
                if balance and len(st["Q"]) > 1:
                    rho = (st["Q"][1].abs().amax() / st["Q"][0].abs().amax()).sqrt()
                    st["Q"][0].mul_(rho)
                    st["Q"][1].div_(rho)
        self.t += 1
