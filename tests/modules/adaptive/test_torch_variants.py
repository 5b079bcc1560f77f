"""NAdam, RAdam, Adamax and Adadelta against torch.optim over 600 steps, float64 and float32,
with the options torch's own tests exercise: weight decay (L2 and decoupled), momentum_decay,
maximize, and param groups with their own settings."""
from __future__ import annotations

import copy

import pytest
import torch

import torchzero as tz
from conftest import small_mlp as _model
from conftest import train_small_mlp as _train

F64 = torch.float64

# (torch optimizer, the chain) per case; "groups": two param groups with different settings
CASES = {
    "NAdam": (lambda p: torch.optim.NAdam(p, lr=2e-3), lambda p: tz.Modular(p, tz.m.NAdam(), tz.m.LR(2e-3))),
    "NAdam-momentum_decay-betas": (
        lambda p: torch.optim.NAdam(p, lr=1e-3, betas=(0.8, 0.99), eps=1e-6, momentum_decay=1e-2),
        lambda p: tz.Modular(p, tz.m.NAdam((0.8, 0.99), 1e-6, 1e-2), tz.m.LR(1e-3)),
    ),
    "NAdam-weight_decay": (
        lambda p: torch.optim.NAdam(p, lr=2e-3, weight_decay=0.1),
        lambda p: tz.Modular(p, tz.m.WeightDecay(0.1), tz.m.NAdam(), tz.m.LR(2e-3)),
    ),
    "NAdam-decoupled_weight_decay": (
        lambda p: torch.optim.NAdam(p, lr=2e-3, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p: tz.Modular(p, tz.m.NAdam(), tz.m.WeightDecay(0.1), tz.m.LR(2e-3)),
    ),
    "NAdam-maximize": (
        lambda p: torch.optim.NAdam(p, lr=2e-3, maximize=True),
        lambda p: tz.Modular(p, tz.m.Negate(), tz.m.NAdam(), tz.m.LR(2e-3)),
    ),
    "RAdam": (lambda p: torch.optim.RAdam(p, lr=1e-3), lambda p: tz.Modular(p, tz.m.RAdam(), tz.m.LR(1e-3))),
    "RAdam-betas-eps": (
        lambda p: torch.optim.RAdam(p, lr=1e-3, betas=(0.85, 0.95), eps=1e-6),
        lambda p: tz.Modular(p, tz.m.RAdam((0.85, 0.95), 1e-6), tz.m.LR(1e-3)),
    ),
    "RAdam-weight_decay": (
        lambda p: torch.optim.RAdam(p, lr=1e-3, weight_decay=0.1),
        lambda p: tz.Modular(p, tz.m.WeightDecay(0.1), tz.m.RAdam(), tz.m.LR(1e-3)),
    ),
    "RAdam-decoupled_weight_decay": (
        lambda p: torch.optim.RAdam(p, lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p: tz.Modular(p, tz.m.RAdam(), tz.m.WeightDecay(0.1), tz.m.LR(1e-3)),
    ),
    "Adamax": (lambda p: torch.optim.Adamax(p, lr=2e-3), lambda p: tz.Modular(p, tz.m.Adamax(), tz.m.LR(2e-3))),
    "Adamax-weight_decay-betas": (
        lambda p: torch.optim.Adamax(p, lr=2e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
        lambda p: tz.Modular(p, tz.m.WeightDecay(0.05), tz.m.Adamax((0.8, 0.99), 1e-6), tz.m.LR(2e-3)),
    ),
    "Adadelta": (lambda p: torch.optim.Adadelta(p), lambda p: tz.Modular(p, tz.m.Adadelta(), tz.m.LR(1.0))),
    "Adadelta-rho-weight_decay-maximize": (
        lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01, maximize=True),
        lambda p: tz.Modular(p, tz.m.Negate(), tz.m.WeightDecay(0.01), tz.m.Adadelta(0.95, 1e-5), tz.m.LR(0.5)),
    ),
}


@pytest.mark.parametrize(("dtype", "rtol"), [(F64, 1e-11), (torch.float32, 2e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_600_steps_match_torch(case, dtype, rtol):
    make_torch, make_tz = CASES[case]
    ours, theirs = _model(dtype), _model(dtype)
    _train(theirs, make_torch(theirs.parameters()), 600)
    _train(ours, make_tz(ours.parameters()), 600)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize(
    ("torch_cls", "module", "group_key", "values"),
    [
        (torch.optim.NAdam, tz.m.NAdam, "betas", ((0.9, 0.999), (0.8, 0.99))),
        (torch.optim.RAdam, tz.m.RAdam, "eps", (1e-8, 1e-4)),
        (torch.optim.Adamax, tz.m.Adamax, "betas", ((0.9, 0.999), (0.7, 0.9))),
        (torch.optim.Adadelta, tz.m.Adadelta, "rho", (0.9, 0.5)),
    ],
    ids=["NAdam", "RAdam", "Adamax", "Adadelta"],
)
def test_param_groups_with_their_own_settings_match_torch(torch_cls, module, group_key, values):
    ours, theirs = _model(F64), _model(F64)
    po, pt = list(ours.parameters()), list(theirs.parameters())
    opt_t = torch_cls([{"params": pt[:2], group_key: values[0]}, {"params": pt[2:], group_key: values[1]}], lr=1e-2)
    opt_z = tz.Modular([{"params": po[:2], group_key: values[0]}, {"params": po[2:], group_key: values[1]}], module(), tz.m.LR(1e-2))
    _train(theirs, opt_t, 300)
    _train(ours, opt_z, 300)
    # (torch folds lr into one addcdiv; the chain multiplies after: the rounding differs, and
    # Adamax's max() makes the trajectory sensitive to it at lr 1e-2)
    for a, b in zip(po, pt):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_nadam_mu_product_is_kept_as_torch_keeps_it():
    """torch keeps NAdam's running product of momentum coefficients as a float32 scalar (its
    scalar dtype): the same rounding here is what makes the float64 trajectories equal."""
    model = _model(F64)
    opt = tz.Modular(model.parameters(), tz.m.NAdam(), tz.m.LR(1e-3))
    _train(model, opt, 3)
    twin = copy.deepcopy(_model(F64))
    opt_t = torch.optim.NAdam(twin.parameters(), lr=1e-3)
    _train(twin, opt_t, 3)
    p = next(model.parameters())
    ours = opt.state[p]
    mu = next(v for k, v in ours.items() if k.endswith("mu_product"))
    theirs = opt_t.state[next(twin.parameters())]["mu_product"]
    assert mu.dtype == theirs.dtype and torch.equal(mu, theirs)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: tz.m.NAdam(betas=(1.0, 0.999)), r"NAdam.*betas\[0\]"),
        (lambda: tz.m.NAdam(betas=0.9), "NAdam: betas must be a pair"),
        (lambda: tz.m.NAdam(momentum_decay=-1.0), "NAdam.*momentum_decay"),
        (lambda: tz.m.RAdam(betas=(0.9, 1.5)), r"RAdam.*betas\[1\]"),
        (lambda: tz.m.RAdam(eps=-1.0), "RAdam.*eps"),
        (lambda: tz.m.Adamax(betas=(0.9,)), "Adamax: betas must be a pair"),
        (lambda: tz.m.Adadelta(rho=1.1), "Adadelta.*rho"),
        (lambda: tz.m.Adadelta(eps=float("nan")), "Adadelta.*eps"),
    ],
    ids=["NAdam-beta1=1", "NAdam-betas-scalar", "NAdam-momentum_decay<0", "RAdam-beta2>1", "RAdam-eps<0", "Adamax-one-beta", "Adadelta-rho>1", "Adadelta-eps-nan"],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# ---------------------------------------------------------------------------------- Adafactor
ADAFACTOR = {
    "default": (lambda p: torch.optim.Adafactor(p, lr=1e-2), lambda p: tz.Modular(p, tz.m.Adafactor(lr=1e-2))),
    "beta2_decay-eps-d-weight_decay": (
        lambda p: torch.optim.Adafactor(p, lr=3e-2, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1),
        lambda p: tz.Modular(p, tz.m.Adafactor(lr=3e-2, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0), tz.m.WeightDecay(3e-2 * 0.1)),
    ),
    "maximize": (lambda p: torch.optim.Adafactor(p, lr=1e-2, maximize=True), lambda p: tz.Modular(p, tz.m.Negate(), tz.m.Adafactor(lr=1e-2))),
    "foreach": (lambda p: torch.optim.Adafactor(p, lr=1e-2, foreach=True), lambda p: tz.Modular(p, tz.m.Adafactor(lr=1e-2))),
}


class _ConvNet(torch.nn.Module):
    """Parameters of every rank: a conv weight (4-D, factored over its last two dimensions),
    matrices, vectors and a 0-dim scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.fc = torch.nn.Linear(12, 2)
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1)) * self.scale


# float32: the chain decays as x - (u + lr wd x), torch as x (1 - lr wd) - u; the rounding
# difference grows to 1e-3 relative over 600 steps (float64 agrees to 1e-11)
@pytest.mark.parametrize(("dtype", "rtol"), [(F64, 1e-11), (torch.float32, 2e-3)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(ADAFACTOR))
def test_adafactor_600_steps_match_torch_on_conv_matrix_vector_and_scalar_parameters(case, dtype, rtol):
    make_torch, make_tz = ADAFACTOR[case]
    torch.manual_seed(0)
    theirs = _ConvNet().to(dtype)
    ours = copy.deepcopy(theirs)
    opts = [(theirs, make_torch(theirs.parameters())), (ours, make_tz(ours.parameters()))]
    g = torch.Generator().manual_seed(1)
    for _ in range(600):
        x = torch.randn(8, 2, 4, 4, generator=g).to(dtype)
        for model, opt in opts:
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2 if dtype == F64 else 1e-4)


# large matrices (at least FACTORED_MIN_SIZE elements) take another form of the same math:
# g^2 summed in one buffer, and 1/sqrt(V) as an outer product of two vectors unless an entry
# is floored; a zero row or column of the gradient (floored entries) takes torch's form
LARGE = {
    "matrix": [(160, 128)],
    "batched-conv-shaped": [(4, 3, 48, 40), (7,)],
    "zero-row-and-column": [(192, 96)],
    "tall-and-wide": [(2048, 9), (9, 2048)],
}


@pytest.mark.parametrize(("dtype", "rtol"), [(F64, 1e-11), (torch.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(LARGE))
def test_adafactor_large_matrices_match_torch(case, dtype, rtol, monkeypatch):
    import torchzero.functional.adafactor as F

    written_out = []  # torch's form on a large matrix: only where an entry is floored
    original = F._written_out
    monkeypatch.setattr(F, "_written_out", lambda *a, out=None: written_out.append(out is not None) or original(*a, out=out))
    FACTORED_MIN_SIZE = F.FACTORED_MIN_SIZE
    shapes = LARGE[case]
    assert any(torch.Size(s).numel() >= FACTORED_MIN_SIZE and len(s) > 1 for s in shapes)
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_z = tz.Modular(ours, tz.m.Adafactor(lr=3e-2, beta2_decay=-0.6, d=1.5))
    opt_t = torch.optim.Adafactor(theirs, lr=3e-2, beta2_decay=-0.6, d=1.5)
    for _ in range(300):
        noise = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
        for params, opt in ((ours, opt_z), (theirs, opt_t)):
            for p, n in zip(params, noise):
                p.grad = n + 0.5 * p.detach()  # the gradient depends on where the parameter is
                if case == "zero-row-and-column":
                    p.grad[3] = 0
                    p.grad[:, 5] = 0
            opt.step()
    for a, b in zip(ours, theirs):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol)
    for a, b in zip(ours, theirs):
        if a.dim() > 1:
            for k in ("row_var", "col_var"):
                torch.testing.assert_close(_state(opt_z, a, k), opt_t.state[b][k], rtol=rtol, atol=0)
    assert any(written_out) == (case == "zero-row-and-column")


def _state(opt, p, key):
    return next(v for k, v in opt.state[p].items() if k.split(".")[-1] == key)


def test_adafactor_large_form_on_every_matrix_still_matches_torch_on_the_conv_net(monkeypatch):
    import torchzero.functional.adafactor as F

    monkeypatch.setattr(F, "FACTORED_MIN_SIZE", 0)  # 3x3 kernels and the 2x12 matrix take it too
    torch.manual_seed(0)
    theirs = _ConvNet().to(F64)
    ours = copy.deepcopy(theirs)
    opts = [(theirs, torch.optim.Adafactor(theirs.parameters(), lr=1e-2)), (ours, tz.Modular(ours.parameters(), tz.m.Adafactor(lr=1e-2)))]
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        x = torch.randn(8, 2, 4, 4, generator=g, dtype=F64)
        for model, opt in opts:
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)


def test_adafactor_keeps_factored_state_for_matrices():
    model = _ConvNet()
    opt = tz.Modular(model.parameters(), tz.m.Adafactor())
    model(torch.randn(4, 2, 4, 4)).sum().backward()
    opt.step()
    keys = {name: sorted(k.split(".")[-1] for k in opt.state[p]) for name, p in model.named_parameters()}
    assert keys["conv.weight"] == ["col_var", "row_var", "step"] and keys["fc.bias"] == ["step", "variance"]
    st = opt.state[model.conv.weight]
    shapes = {k.split(".")[-1]: tuple(v.shape) for k, v in st.items() if k.endswith("_var")}
    assert shapes == {"row_var": (3, 2, 3, 1), "col_var": (3, 2, 1, 3)}


def test_adafactor_factors_of_another_shape_are_refused_before_anything_changes():
    model = torch.nn.Linear(4, 3)
    opt = tz.Modular(model.parameters(), tz.m.Adafactor())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    key = next(k for k in sd["state"][0] if k.endswith("row_var"))
    sd["state"][0][key] = torch.zeros(5, 1)
    opt.load_state_dict(sd)  # a tensor of any shape loads (the factors are not shaped like the parameter)
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[model.weight].items()}
    w = model.weight.detach().clone()
    with pytest.raises(ValueError, match="row_var"):
        opt.step()
    assert torch.equal(model.weight.detach(), w)
    for k, v in opt.state[model.weight].items():
        assert torch.equal(v, before[k]) if isinstance(v, torch.Tensor) else v == before[k]


def test_adafactor_refuses_complex_parameters_as_torch_does():
    z = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex64))
    opt = tz.Modular([z], tz.m.Adafactor())
    z.grad = torch.ones_like(z)
    with pytest.raises(RuntimeError, match="complex"):
        opt.step()
    assert not opt.state[z]


def test_adafactor_lr_is_scheduled_through_the_param_groups():
    ours, theirs = _model(F64), _model(F64)
    opt_z = tz.Modular(ours.parameters(), tz.m.Adafactor(lr=1e-2))
    opt_t = torch.optim.Adafactor(theirs.parameters(), lr=1e-2)
    scheds = [torch.optim.lr_scheduler.StepLR(o, 10, 0.5) for o in (opt_z, opt_t)]
    g = torch.Generator().manual_seed(1)
    for _ in range(40):
        x = torch.randn(16, 5, generator=g, dtype=F64)
        for model, opt, sched in ((ours, opt_z, scheds[0]), (theirs, opt_t, scheds[1])):
            opt.zero_grad()
            (model(x).sin() ** 2).mean().backward()
            opt.step()
            sched.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)


# ---------------------------------------------------------------------------------- ASGD
ASGD_CASES = {
    "t0=100": (lambda p: torch.optim.ASGD(p, lr=1e-2, t0=100), lambda p: tz.Modular(p, tz.m.ASGD(lr=1e-2, t0=100))),
    "options-weight_decay-maximize": (
        lambda p: torch.optim.ASGD(p, lr=5e-2, lambd=1e-2, alpha=0.5, t0=50, weight_decay=0.01, maximize=True),
        lambda p: tz.Modular(p, tz.m.Negate(), tz.m.WeightDecay(0.01), tz.m.ASGD(5e-2, 1e-2, 0.5, 50)),
    ),
    "default-t0": (lambda p: torch.optim.ASGD(p), lambda p: tz.Modular(p, tz.m.ASGD())),
}


@pytest.mark.parametrize(("dtype", "rtol"), [(F64, 1e-11), (torch.float32, 2e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(ASGD_CASES))
def test_asgd_600_steps_match_torch_with_the_average(case, dtype, rtol):
    make_torch, make_tz = ASGD_CASES[case]
    ours, theirs = _model(dtype), _model(dtype)
    opt_t, opt_z = make_torch(theirs.parameters()), make_tz(ours.parameters())
    _train(theirs, opt_t, 600)
    _train(ours, opt_z, 600)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)
        ax = next(v for k, v in opt_z.state[a].items() if k.endswith(".ax"))
        torch.testing.assert_close(ax, opt_t.state[b]["ax"], rtol=rtol, atol=rtol * 1e-2)
