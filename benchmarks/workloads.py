"""Parameter-set builders for the optimizer-step benchmarks.

Each builder returns a list of float32 leaf tensors with ``requires_grad=True``
whose ``.grad`` is filled with seeded random values (``torch.Generator`` with a
fixed seed), so every run of the benchmark sees exactly the same data.

Use :func:`make_pair` to get two independent, identical copies of a workload
(one for the torchzero side, one for the torch side).

Run ``python benchmarks/workloads.py`` to print the exact tensor/element counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

DEFAULT_SEED = 0

Shape = tuple[int, ...]


def _materialize(
    shapes: Sequence[Shape], seed: int, device: torch.device | str, param_std: float = 0.02
) -> list[torch.Tensor]:
    """Create leaf tensors of the given shapes with seeded values and seeded ``.grad``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    params: list[torch.Tensor] = []
    for shape in shapes:
        p = (torch.randn(shape, generator=gen, dtype=torch.float32) * param_std).to(device)
        p.requires_grad_(True)
        p.grad = torch.randn(shape, generator=gen, dtype=torch.float32).to(device)
        params.append(p)
    return params


# --------------------------------------------------------------------------- #
# (a) transformer-like parameter set
# --------------------------------------------------------------------------- #
# A pre-LN decoder with a gated (SwiGLU-style) MLP, LayerNorms with weight and
# bias, and biases on every linear layer:
#
#   wte [V, d], wpe [T, d]                                         2 tensors
#   per layer (x L):
#     ln_1.weight [d], ln_1.bias [d]                               2
#     attn.qkv.weight [3d, d], attn.qkv.bias [3d]                  2
#     attn.proj.weight [d, d], attn.proj.bias [d]                  2
#     ln_2.weight [d], ln_2.bias [d]                               2
#     mlp.gate.weight [h, d], mlp.gate.bias [h]                    2
#     mlp.up.weight [h, d], mlp.up.bias [h]                        2
#     mlp.down.weight [d, h], mlp.down.bias [d]                    2
#                                                                 14 per layer
#   ln_f.weight [d], ln_f.bias [d]                                 2 tensors
#
# With d=640, h=1728, L=10, V=10000, T=1024 this is 4 + 10*14 = 144 tensors and
# 56,710,400 elements (~56.7M).
TRANSFORMER_CONFIG = dict(d_model=640, d_hidden=1728, n_layers=10, vocab=10000, n_ctx=1024)


def transformer_shapes(
    d_model: int = 640, d_hidden: int = 1728, n_layers: int = 10, vocab: int = 10000, n_ctx: int = 1024
) -> list[tuple[str, Shape]]:
    d, h = d_model, d_hidden
    shapes: list[tuple[str, Shape]] = [("wte.weight", (vocab, d)), ("wpe.weight", (n_ctx, d))]
    for i in range(n_layers):
        pre = f"h.{i}."
        shapes += [
            (pre + "ln_1.weight", (d,)),
            (pre + "ln_1.bias", (d,)),
            (pre + "attn.qkv.weight", (3 * d, d)),
            (pre + "attn.qkv.bias", (3 * d,)),
            (pre + "attn.proj.weight", (d, d)),
            (pre + "attn.proj.bias", (d,)),
            (pre + "ln_2.weight", (d,)),
            (pre + "ln_2.bias", (d,)),
            (pre + "mlp.gate.weight", (h, d)),
            (pre + "mlp.gate.bias", (h,)),
            (pre + "mlp.up.weight", (h, d)),
            (pre + "mlp.up.bias", (h,)),
            (pre + "mlp.down.weight", (d, h)),
            (pre + "mlp.down.bias", (d,)),
        ]
    shapes += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    return shapes


def transformer_like(seed: int = DEFAULT_SEED, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """144 float32 tensors, 56,710,400 elements, shaped like a small transformer."""
    shapes = [s for _, s in transformer_shapes(**TRANSFORMER_CONFIG)]
    params = _materialize(shapes, seed, device)
    # LayerNorm weights start at 1 and biases at 0 in a real model; the exact
    # values do not matter for timing, but keep the set looking realistic.
    with torch.no_grad():
        for (name, _), p in zip(transformer_shapes(**TRANSFORMER_CONFIG), params):
            if ".ln_" in name or name.startswith("ln_"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    return params


# --------------------------------------------------------------------------- #
# (b) many small tensors
# --------------------------------------------------------------------------- #
# 400 tensors cycling through a fixed mix of shapes, each with a few hundred to
# a few thousand elements (256 .. 4096), 688,600 elements in total.
SMALL_SHAPES: tuple[Shape, ...] = (
    (256,),
    (24, 32),  # 768
    (1000,),
    (16, 16, 8),  # 2048
    (48, 48),  # 2304
    (300,),
    (40, 75),  # 3000
    (64, 64),  # 4096
)
N_SMALL = 400


def small_shapes(n: int = N_SMALL) -> list[Shape]:
    return [SMALL_SHAPES[i % len(SMALL_SHAPES)] for i in range(n)]


def small_tensors(seed: int = DEFAULT_SEED, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """400 small float32 tensors (256 to 4096 elements each)."""
    return _materialize(small_shapes(), seed, device)


# --------------------------------------------------------------------------- #
# (c) the transformer's hidden weight matrices
# --------------------------------------------------------------------------- #
# What Muon, Shampoo, SOAP and PSGD precondition: the attention and MLP weight matrices of
# the transformer above (no embeddings, norms or biases), for MATRIX_LAYERS layers:
# qkv [3d, d], proj [d, d], gate [h, d], up [h, d], down [d, h] per layer.
MATRIX_LAYERS = 2


def matrix_shapes(n_layers: int = MATRIX_LAYERS) -> list[Shape]:
    cfg = dict(TRANSFORMER_CONFIG, n_layers=n_layers)
    return [s for name, s in transformer_shapes(**cfg) if name.startswith("h.") and name.endswith(".weight") and len(s) == 2]


def transformer_matrices(seed: int = DEFAULT_SEED, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """10 float32 matrices, 9,912,320 elements: two layers' hidden weights of the transformer."""
    return _materialize(matrix_shapes(), seed, device)


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
WORKLOADS: dict[str, Callable[..., list[torch.Tensor]]] = {
    "transformer": transformer_like,
    "small": small_tensors,
    "matrices": transformer_matrices,
}


def clone_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Independent deep copy: new leaf tensors with their own storage and ``.grad``."""
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_(True)
        q.grad = None if p.grad is None else p.grad.detach().clone()
        out.append(q)
    return out


def make_pair(
    workload: str | Callable[..., list[torch.Tensor]],
    seed: int = DEFAULT_SEED,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two independent, identical copies of a workload (values and grads)."""
    builder = WORKLOADS[workload] if isinstance(workload, str) else workload
    a = builder(seed=seed, device=device)
    b = clone_params(a)
    return a, b


def describe(params: Sequence[torch.Tensor]) -> str:
    n = sum(p.numel() for p in params)
    sizes = [p.numel() for p in params]
    return (
        f"{len(params)} tensors, {n:,} elements ({n / 1e6:.3f}M), "
        f"{n * 4 / 2**20:.1f} MiB fp32, per-tensor numel min {min(sizes):,} max {max(sizes):,}"
    )


if __name__ == "__main__":
    for name, builder in WORKLOADS.items():
        ps = builder()
        print(f"{name:12s} {describe(ps)}")
