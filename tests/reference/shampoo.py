"""Reference for Shampoo, transcribed from Algorithm 2 of Gupta, Koren & Singer (2018),
"Shampoo: Preconditioned Stochastic Tensor Optimization" (order-k tensors): H_i starts at
eps * I; each step H_i += G_(i) G_(i)^T for every dim i, and W -= lr * G x_1 H_1^(-1/2k) ... x_k
H_k^(-1/2k), the roots by an eigendecomposition in float64. Optionally the roots are recomputed
only every ``update_freq`` steps (the practical variant) and the exponent overridden. Plain
per-tensor code, independent of ``torchzero``."""
from __future__ import annotations

import torch


def _root(H: torch.Tensor, p: float) -> torch.Tensor:
    lam, V = torch.linalg.eigh(H.double())
    return (V @ torch.diag(lam ** (-1.0 / p)) @ V.T).to(H.dtype)


class ShampooReference(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-2, eps=1e-4, update_freq=1, exponent=None):  # type: ignore[no-untyped-def]
        super().__init__(params, dict(lr=lr, eps=eps, update_freq=update_freq, exponent=exponent))

    @torch.no_grad()
    def step(self):  # type: ignore[no-untyped-def, override]
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                G, st = w.grad, self.state[w]
                k = G.ndim
                if not st:
                    st["t"] = 0
                    st["H"] = [group["eps"] * torch.eye(n, dtype=G.dtype) for n in G.shape]
                    st["P"] = [None] * k
                for i in range(k):
                    Gi = G.movedim(i, 0).reshape(G.shape[i], -1)
                    st["H"][i] = st["H"][i] + Gi @ Gi.T
                    if st["t"] % group["update_freq"] == 0:
                        st["P"][i] = _root(st["H"][i], group["exponent"] or 2 * k)
                st["t"] += 1
                X = G
                for i in range(k):  # X x_i P_i: multiply dim i, keep the dim order
                    X = torch.tensordot(st["P"][i], X.movedim(i, 0), dims=([1], [0])).movedim(0, i)
                w.sub_(group["lr"] * X)
