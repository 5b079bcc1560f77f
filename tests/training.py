"""Small training problems shared by the convergence smoke tests of the module families."""
from __future__ import annotations

import torch

import torchzero as tz


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's function of a 2-vector; minimum 0 at (1, 1)."""
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def run_rosenbrock(modules, steps: int = 600) -> float:
    """The loss after ``steps`` of ``Modular(modules)`` from (-1.5, 2.0), in float64."""
    xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt = tz.Modular([xy], *modules)
    for _ in range(steps):
        opt.zero_grad()
        rosenbrock(xy).backward()
        opt.step()
    return rosenbrock(xy).item()


def mlp_data() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 8-D regression problem: a random tanh teacher plus a little noise."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g)
    w1, w2 = torch.randn(8, 16, generator=g), torch.randn(16, 1, generator=g)
    y = torch.tanh(X @ w1) @ w2 / 4 + 0.01 * torch.randn(256, 1, generator=g)
    return X, y


def run_mlp(modules, steps: int = 300) -> float:
    """The full-batch MSE after ``steps`` of ``Modular(modules)`` on an 8-32-1 tanh MLP (seeded)."""
    # one intra-op thread: this tiny model is 30x slower when its threads compete with other processes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X, y = mlp_data()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = tz.Modular(model.parameters(), *modules)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
        with torch.no_grad():
            return torch.nn.functional.mse_loss(model(X), y).item()
    finally:
        torch.set_num_threads(threads)
