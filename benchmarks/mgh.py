"""Test problems of Moré, Garbow & Hillstrom (1981), "Testing unconstrained optimization
software", ACM TOMS 7(1), 17-41: each is a sum of squares $f(x) = \\sum_i f_i(x)^2$ of residuals
written with torch ops, with its standard starting point (and, where the paper gives it, the
minimum value). Numbers are those of the paper; the problem numbers are its numbering."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

F64 = torch.float64


@dataclass(frozen=True)
class Problem:
    number: int
    name: str
    residuals: Callable[[Tensor], Tensor]
    x0: list[float]
    f_min: float | None  # the paper's minimum value (None where it gives none)

    def f(self, x: Tensor) -> Tensor:
        r = self.residuals(x)
        return (r * r).sum()

    def start(self, dtype: torch.dtype = F64) -> Tensor:
        return torch.tensor(self.x0, dtype=dtype)


def _t(values: list[float], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def rosenbrock(x: Tensor) -> Tensor:
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def freudenstein_roth(x: Tensor) -> Tensor:
    return torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1], -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


def powell_badly_scaled(x: Tensor) -> Tensor:
    return torch.stack([1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x: Tensor) -> Tensor:
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def beale(x: Tensor) -> Tensor:
    y = _t([1.5, 2.25, 2.625], x)
    i = _t([1.0, 2.0, 3.0], x)
    return y - x[0] * (1 - x[1] ** i)


def jennrich_sampson(x: Tensor) -> Tensor:
    i = torch.arange(1, 11, dtype=x.dtype)
    return 2 + 2 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


def helical_valley(x: Tensor) -> Tensor:
    theta = torch.atan(x[1] / x[0]) / (2 * math.pi) + torch.where(x[0] < 0, 0.5, 0.0)
    return torch.stack([10 * (x[2] - 10 * theta), 10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])


_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]


def bard(x: Tensor) -> Tensor:
    u = torch.arange(1, 16, dtype=x.dtype)
    v = 16 - u
    w = torch.minimum(u, v)
    return _t(_BARD_Y, x) - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSS_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009]


def gaussian(x: Tensor) -> Tensor:
    t = (8 - torch.arange(1, 16, dtype=x.dtype)) / 2
    return x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2) - _t(_GAUSS_Y, x)


def box_3d(x: Tensor) -> Tensor:
    t = 0.1 * torch.arange(1, 11, dtype=x.dtype)
    return torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10 * t))


def powell_singular(x: Tensor) -> Tensor:
    return torch.stack([
        x[0] + 10 * x[1], math.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2, math.sqrt(10) * (x[0] - x[3]) ** 2,
    ])


def wood(x: Tensor) -> Tensor:
    return torch.stack([
        10 * (x[1] - x[0] ** 2), 1 - x[0], math.sqrt(90) * (x[3] - x[2] ** 2), 1 - x[2],
        math.sqrt(10) * (x[1] + x[3] - 2), (x[1] - x[3]) / math.sqrt(10),
    ])


_KO_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
_KO_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]


def kowalik_osborne(x: Tensor) -> Tensor:
    u = _t(_KO_U, x)
    return _t(_KO_Y, x) - x[0] * (u * u + u * x[1]) / (u * u + u * x[2] + x[3])


def brown_dennis(x: Tensor) -> Tensor:
    t = torch.arange(1, 21, dtype=x.dtype) / 5
    return (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2


_OSB1_Y = [0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718, 0.685, 0.658, 0.628, 0.603,
           0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406]


def osborne1(x: Tensor) -> Tensor:
    t = 10 * torch.arange(0, 33, dtype=x.dtype)
    return _t(_OSB1_Y, x) - (x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4]))


def biggs_exp6(x: Tensor) -> Tensor:
    t = 0.1 * torch.arange(1, 14, dtype=x.dtype)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    return x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1]) + x[5] * torch.exp(-t * x[4]) - y


def watson(x: Tensor) -> Tensor:
    n = x.numel()
    t = torch.arange(1, 30, dtype=x.dtype) / 29
    j = torch.arange(1, n + 1, dtype=x.dtype)
    s1 = ((j[1:] - 1) * x[1:] * t[:, None] ** (j[1:] - 2)).sum(1)
    s2 = (x * t[:, None] ** (j - 1)).sum(1)
    return torch.cat([s1 - s2**2 - 1, x[:1], (x[1] - x[0] ** 2 - 1).reshape(1)])


def extended_rosenbrock(x: Tensor) -> Tensor:
    odd, even = x[0::2], x[1::2]
    return torch.cat([10 * (even - odd**2), 1 - odd])


def extended_powell(x: Tensor) -> Tensor:
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return torch.cat([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2])


def penalty1(x: Tensor) -> Tensor:
    return torch.cat([math.sqrt(1e-5) * (x - 1), ((x * x).sum() - 0.25).reshape(1)])


def variably_dimensioned(x: Tensor) -> Tensor:
    j = torch.arange(1, x.numel() + 1, dtype=x.dtype)
    s = (j * (x - 1)).sum()
    return torch.cat([x - 1, s.reshape(1), (s * s).reshape(1)])


def trigonometric(x: Tensor) -> Tensor:
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=x.dtype)
    return n - torch.cos(x).sum() + i * (1 - torch.cos(x)) - torch.sin(x)


def brown_almost_linear(x: Tensor) -> Tensor:
    n = x.numel()
    return torch.cat([x[:-1] + x.sum() - (n + 1), (torch.prod(x) - 1).reshape(1)])


def _boundary_grid(x: Tensor) -> tuple[Tensor, float]:
    n = x.numel()
    h = 1 / (n + 1)
    return h * torch.arange(1, n + 1, dtype=x.dtype), h


def discrete_boundary_value(x: Tensor) -> Tensor:
    t, h = _boundary_grid(x)
    padded = torch.cat([x.new_zeros(1), x, x.new_zeros(1)])
    return 2 * x - padded[:-2] - padded[2:] + h * h * (x + t + 1) ** 3 / 2


def discrete_integral_equation(x: Tensor) -> Tensor:
    t, h = _boundary_grid(x)
    c = (x + t + 1) ** 3
    lower = torch.cumsum(t * c, 0)  # sum over j <= i
    upper = torch.flip(torch.cumsum(torch.flip((1 - t) * c, [0]), 0), [0]) - (1 - t) * c  # sum over j > i
    return x + h * ((1 - t) * lower + t * upper) / 2


def broyden_tridiagonal(x: Tensor) -> Tensor:
    padded = torch.cat([x.new_zeros(1), x, x.new_zeros(1)])
    return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1


def broyden_banded(x: Tensor) -> Tensor:
    n = x.numel()
    g = x * (1 + x)
    out = []
    for i in range(n):
        lo, hi = max(0, i - 5), min(n - 1, i + 1)
        band = torch.cat([g[lo:i], g[i + 1 : hi + 1]])
        out.append(x[i] * (2 + 5 * x[i] ** 2) + 1 - band.sum())
    return torch.stack(out)


def linear_full_rank(x: Tensor, m: int = 20) -> Tensor:
    s = x.sum()
    return torch.cat([x - 2 * s / m - 1, (-2 * s / m - 1).expand(m - x.numel())])


def _n(n: int, value: float) -> list[float]:
    return [value] * n


PROBLEMS: list[Problem] = [
    Problem(1, "Rosenbrock", rosenbrock, [-1.2, 1.0], 0.0),
    Problem(2, "Freudenstein and Roth", freudenstein_roth, [0.5, -2.0], None),  # 0, or the local 48.9842
    Problem(3, "Powell badly scaled", powell_badly_scaled, [0.0, 1.0], 0.0),
    Problem(4, "Brown badly scaled", brown_badly_scaled, [1.0, 1.0], 0.0),
    Problem(5, "Beale", beale, [1.0, 1.0], 0.0),
    Problem(6, "Jennrich and Sampson", jennrich_sampson, [0.3, 0.4], 124.362),
    Problem(7, "Helical valley", helical_valley, [-1.0, 0.0, 0.0], 0.0),
    Problem(8, "Bard", bard, [1.0, 1.0, 1.0], 8.21487e-3),
    Problem(9, "Gaussian", gaussian, [0.4, 1.0, 0.0], 1.12793e-8),
    Problem(12, "Box three-dimensional", box_3d, [0.0, 10.0, 20.0], 0.0),
    Problem(13, "Powell singular", powell_singular, [3.0, -1.0, 0.0, 1.0], 0.0),
    Problem(14, "Wood", wood, [-3.0, -1.0, -3.0, -1.0], 0.0),
    Problem(15, "Kowalik and Osborne", kowalik_osborne, [0.25, 0.39, 0.415, 0.39], 3.07505e-4),
    Problem(16, "Brown and Dennis", brown_dennis, [25.0, 5.0, -5.0, -1.0], 85822.2),
    Problem(17, "Osborne 1", osborne1, [0.5, 1.5, -1.0, 0.01, 0.02], 5.46489e-5),
    Problem(18, "Biggs EXP6", biggs_exp6, [1.0, 2.0, 1.0, 1.0, 1.0, 1.0], None),  # 0, or the local 5.65565e-3
    Problem(20, "Watson (n=6)", watson, _n(6, 0.0), 2.28767e-3),
    Problem(21, "Extended Rosenbrock (n=10)", extended_rosenbrock, [-1.2, 1.0] * 5, 0.0),
    Problem(22, "Extended Powell singular (n=12)", extended_powell, [3.0, -1.0, 0.0, 1.0] * 3, 0.0),
    Problem(23, "Penalty I (n=10)", penalty1, [float(j) for j in range(1, 11)], 7.08765e-5),
    Problem(25, "Variably dimensioned (n=10)", variably_dimensioned, [1 - j / 10 for j in range(1, 11)], 0.0),
    Problem(26, "Trigonometric (n=10)", trigonometric, _n(10, 0.1), None),  # 0, or a local minimum
    Problem(27, "Brown almost-linear (n=10)", brown_almost_linear, _n(10, 0.5), 0.0),
    Problem(28, "Discrete boundary value (n=10)", discrete_boundary_value, [t * (t - 1) for t in [j / 11 for j in range(1, 11)]], 0.0),
    Problem(29, "Discrete integral equation (n=10)", discrete_integral_equation, [t * (t - 1) for t in [j / 11 for j in range(1, 11)]], 0.0),
    Problem(30, "Broyden tridiagonal (n=10)", broyden_tridiagonal, _n(10, -1.0), 0.0),
    Problem(31, "Broyden banded (n=10)", broyden_banded, _n(10, -1.0), 0.0),
    Problem(32, "Linear function, full rank (n=10, m=20)", linear_full_rank, _n(10, 1.0), 10.0),
]


def extended(kind: str, n: int) -> Problem:
    """Extended Rosenbrock (n even) or extended Powell singular (n a multiple of 4) at size ``n``."""
    if kind == "rosenbrock":
        return Problem(21, f"Extended Rosenbrock (n={n:,})", extended_rosenbrock, [-1.2, 1.0] * (n // 2), 0.0)
    return Problem(22, f"Extended Powell singular (n={n:,})", extended_powell, [3.0, -1.0, 0.0, 1.0] * (n // 4), 0.0)
