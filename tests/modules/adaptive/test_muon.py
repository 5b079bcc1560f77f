"""Muon against torch.optim.Muon (600 steps, every option torch's tests exercise) and against a
transcription of the Muon author's reference code (tests/reference/muon.py) on a small CNN with
its auxiliary Adam; Newton-Schulz bit for bit against torch's; shapes and errors."""
from __future__ import annotations

import pytest
import torch
from torch.optim import _muon as torch_muon

import torchzero as tz
from conftest import train_small_cnn
from torchzero.functional.orthogonalize import NS_COEFFICIENTS, muon_direction, newton_schulz

from reference.muon import MuonWithAuxAdam

F64 = torch.float64

TORCH_OPTIONS = {
    "defaults": {},
    "no-nesterov": {"nesterov": False},
    "match_rms_adamw": {"adjust_lr_fn": "match_rms_adamw"},
    "original-ns_steps3-eps": {"adjust_lr_fn": "original", "ns_steps": 3, "eps": 1e-4},
    "ns_coefficients-momentum": {"ns_coefficients": (3.0, -3.2, 1.2), "momentum": 0.9},
}
SHAPES = [(16, 8), (8, 24), (12, 12)]


def _matrices(dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(s, generator=g) / s[1] ** 0.5).to(dtype).requires_grad_() for s in SHAPES]


def _loss(ps: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = (x @ ps[0]).tanh() @ ps[1]
    return h.sin().pow(2).mean() + (h[:, :12] @ ps[2]).pow(2).mean() * 0.1


def _run(ps: list[torch.Tensor], opt: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 16, generator=g).to(ps[0].dtype)
        opt.zero_grad()
        _loss(ps, x).backward()
        opt.step()


# both forms of the chain: the fused one (torch.optim.Muon's loop, the default) and the chain
# of modules (fused=False), which agree with each other up to rounding
PATHS = {"fused": None, "chain": False}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("options", list(TORCH_OPTIONS.values()), ids=list(TORCH_OPTIONS))
def test_600_steps_match_torch_float64(options, path):
    """torch orthogonalizes in bfloat16 also for float64 parameters; so does Muon by default,
    with the same operations, so the float64 trajectories agree to rounding."""
    theirs, ours = _matrices(F64), _matrices(F64)
    _run(theirs, torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, **options), 600)
    opt = tz.Modular(ours, tz.m.Muon(**options), tz.m.WeightDecay(0.1), tz.m.LR(0.02), fused=PATHS[path])
    assert (opt._fused_plan is not None) == (path == "fused")
    _run(ours, opt, 600)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_chain_steps_match_torch_to_rounding():
    """In float32 the chain's rounding (lr applied after the shape factor) differs from torch's
    by an ulp; that flips a bfloat16 rounding now and then, which a nonconvex loss amplifies,
    just as it amplifies a one-ulp change of torch's own start. The first steps agree to float32
    rounding."""
    theirs, ours = _matrices(torch.float32), _matrices(torch.float32)
    _run(theirs, torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1), 3)
    _run(ours, tz.Modular(ours, tz.m.Muon(), tz.m.WeightDecay(0.1), tz.m.LR(0.02), fused=False), 3)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options", list(TORCH_OPTIONS.values()), ids=list(TORCH_OPTIONS))
def test_fused_form_is_torchs_step_bit_for_bit_in_float32(options):
    """The fused form runs torch.optim.Muon's operations in its order: 300 float32 steps equal."""
    theirs, ours = _matrices(torch.float32), _matrices(torch.float32)
    _run(theirs, torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, **options), 300)
    _run(ours, tz.Modular(ours, tz.m.Muon(**options), tz.m.WeightDecay(0.1), tz.m.LR(0.02), fused=True), 300)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("path", list(PATHS))
def test_param_groups_with_their_own_settings_match_torch(path):
    theirs, ours = _matrices(F64), _matrices(F64)
    groups = lambda ps: [  # noqa: E731
        {"params": ps[:1], "momentum": 0.8, "ns_steps": 4},
        {"params": ps[1:], "adjust_lr_fn": "match_rms_adamw", "nesterov": False, "lr": 0.01},
    ]
    _run(theirs, torch.optim.Muon(groups(theirs), lr=0.02, weight_decay=0.0), 300)
    _run(ours, tz.Modular(groups(ours), tz.m.Muon(), tz.m.LR(0.02), fused=PATHS[path]), 300)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(16, 8), (8, 16), (3, 5, 7), (1, 9)], ids=["tall", "wide", "batch", "one-row"])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
def test_bfloat16_newton_schulz_is_torchs_bit_for_bit(shape, dtype):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    ours = newton_schulz(G, 5, NS_COEFFICIENTS, 1e-7, torch.bfloat16)
    mats = G.reshape(-1, *G.shape[-2:])
    theirs = torch.stack([torch_muon._zeropower_via_newtonschulz(m, NS_COEFFICIENTS, 5, 1e-7) for m in mats]).reshape(G.shape)
    assert torch.equal(ours, theirs.to(dtype))


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 12), torch.nn.Tanh(),
        torch.nn.Linear(12, 3),
    ).to(F64)


def _train_cnn(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    train_small_cnn(model, opt, steps, seed=3)


def _reference_groups(model: torch.nn.Module) -> list[dict]:
    hidden = [model[0].weight, model[3].weight]
    rest = [p for p in model.parameters() if all(p is not h for h in hidden)]
    return [
        {"params": hidden, "use_muon": True, "lr": 0.02, "weight_decay": 0.01},
        {"params": rest, "use_muon": False, "lr": 3e-3, "weight_decay": 0.01},
    ]


def _tz_muon_with_adam(model: torch.nn.Module, ns_dtype: str | None, eps: float) -> tz.Modular:
    hidden = [model[0].weight, model[3].weight]
    return tz.Modular(
        model.parameters(),
        tz.m.Split(
            hidden,
            [tz.m.Muon(ns_dtype=ns_dtype, eps=eps), tz.m.WeightDecay(0.01), tz.m.LR(0.02)],
            [tz.m.Adam(0.9, 0.95, eps=1e-10), tz.m.WeightDecay(0.01), tz.m.LR(3e-3)],
        ),
    )


def test_200_steps_match_the_reference_code_on_a_cnn():
    """The reference's algorithm with its iteration in float64 and its norm shift at 0 (both
    constants there; our clamp and its shift then coincide): conv weight, hidden matrix and the
    auxiliary Adam for the head and the biases agree step for step; the first step exactly up to
    float64 rounding."""
    ref, ours = _cnn(), _cnn()
    opt_ref = MuonWithAuxAdam(_reference_groups(ref), ns_dtype=F64, eps=0.0, conv_factor_from_matrix=True)
    opt = _tz_muon_with_adam(ours, "float64", 0.0)
    _train_cnn(ref, opt_ref, 1)
    _train_cnn(ours, opt, 1)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)
    _train_cnn(ref, opt_ref, 199)
    _train_cnn(ours, opt, 199)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_first_step_matches_the_reference_in_bfloat16():
    """With the reference's own constants (bfloat16, eps=1e-7 added): bfloat16 Newton-Schulz
    is accurate to a few percent only, and the two differ in where they round (torch's fused
    addmm against the reference's separate products). So the check is that one step differs
    from the reference's by no more than the reference's own bfloat16 error (against its
    float64 run), and is no less accurate than it; the Adam-trained parameters agree to
    rounding."""
    ref, ours, exact, start = _cnn(), _cnn(), _cnn(), _cnn()
    _train_cnn(ref, MuonWithAuxAdam(_reference_groups(ref), conv_factor_from_matrix=True), 1)
    _train_cnn(exact, MuonWithAuxAdam(_reference_groups(exact), ns_dtype=F64, conv_factor_from_matrix=True), 1)
    _train_cnn(ours, _tz_muon_with_adam(ours, "bfloat16", 1e-7), 1)
    with torch.no_grad():
        for i, (a, b, c, p0) in enumerate(zip(ours.parameters(), ref.parameters(), exact.parameters(), start.parameters())):
            if i in (0, 2):  # the Muon-trained weights
                ref_error = (b - c).norm()
                assert 0 < (a - b).norm() <= 1.5 * ref_error
                assert (a - c).norm() <= 1.5 * ref_error
                assert ref_error < 0.2 * (b - p0).norm()
            else:
                torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_reference_conv_factor_quirk_is_documented_difference():
    """The reference scales a 4-D weight by sqrt(max(1, kh/kw)) (its last two dims); torchzero
    and torch scale by the flattened matrix's shape. For a conv with more outputs than
    in*kh*kw the two differ by exactly that factor on the first step."""
    torch.manual_seed(0)
    w = torch.randn(18, 1, 2, 2, dtype=F64, requires_grad=True)  # matrix (18, 4): factor sqrt(4.5)
    grad = torch.randn_like(w)
    steps = []
    for from_matrix in (False, True):
        p = w.detach().clone().requires_grad_()
        opt = MuonWithAuxAdam([{"params": [p], "use_muon": True}], ns_dtype=F64, eps=0.0, conv_factor_from_matrix=from_matrix)
        p.grad = grad.clone()
        opt.step()
        steps.append(p.detach() - w.detach())
    p = w.detach().clone().requires_grad_()
    p.grad = grad.clone()
    tz.Modular([p], tz.m.Muon(ns_dtype="float64", eps=0.0), tz.m.LR(0.02)).step()
    torch.testing.assert_close(p.detach() - w.detach(), steps[1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(steps[1], steps[0] * 4.5**0.5, rtol=1e-12, atol=1e-14)


def test_vectors_and_scalars_get_the_momentum_only():
    g = [torch.randn(5, dtype=F64), torch.randn((), dtype=F64), torch.randn(0, 3, dtype=F64)]
    bufs = [torch.randn_like(t) for t in g]
    expected = [t.lerp(b.lerp(t, 1 - 0.95), 0.95) for t, b in zip(g, bufs)]
    before = [t.clone() for t in g]
    out = muon_direction(g, bufs, 0.95, True, ns_dtype=torch.bfloat16)
    for o, e, t, b0 in zip(out, expected, g, before):
        torch.testing.assert_close(o, e)
        assert torch.equal(t, b0)  # the input is not modified
    out = muon_direction(g, bufs, 0.95, False)
    assert all(o is not b for o, b in zip(out, bufs))  # never the state buffer itself


def test_conv_weight_is_orthogonalized_as_a_flattened_matrix():
    g = torch.randn(4, 3, 3, 3, dtype=F64)
    buf = torch.zeros_like(g)
    out = muon_direction([g], [buf], 0.0, False, ns_dtype=F64)[0]
    sv = torch.linalg.svdvals(out.reshape(4, 27))
    assert out.shape == g.shape and bool(((sv > 0.6) & (sv < 1.25)).all())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"momentum": 1.0}, "Muon.*momentum"),
        ({"nesterov": "yes"}, "Muon.*nesterov"),
        ({"ns_coefficients": (1.0, 2.0)}, "Muon: ns_coefficients must be three numbers"),
        ({"ns_coefficients": (1.0, float("nan"), 2.0)}, r"Muon.*ns_coefficients\[1\]"),
        ({"eps": -1.0}, "Muon.*eps"),
        ({"ns_steps": 0}, "Muon.*ns_steps"),
        ({"adjust_lr_fn": "moonlight"}, "Muon.*adjust_lr_fn"),
        ({"ns_dtype": "float16"}, "Muon.*ns_dtype"),
    ],
    ids=["momentum=1", "nesterov-str", "two-coefficients", "nan-coefficient", "eps<0", "ns_steps=0", "adjust_lr_fn", "ns_dtype"],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tz.m.Muon(**kwargs)


def test_orthogonalize_takes_the_same_newton_schulz_options():
    G = torch.randn(6, 10, dtype=torch.float32)
    out = tz.apply_transform(tz.m.Orthogonalize(ns_dtype="bfloat16", ns_coefficients=(3.0, -3.2, 1.2), ns_steps=3), [G.clone()])[0]
    expected = torch_muon._zeropower_via_newtonschulz(G, (3.0, -3.2, 1.2), 3, 1e-7).float()
    assert torch.equal(out, expected)
    scaled = tz.apply_transform(tz.m.Orthogonalize(adjust_lr=True, adjust_lr_fn="match_rms_adamw"), [G.clone()])[0]
    torch.testing.assert_close(scaled, tz.apply_transform(tz.m.Orthogonalize(), [G.clone()])[0] * 0.2 * 10**0.5)
