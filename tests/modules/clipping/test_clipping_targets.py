"""``target="update"`` / ``target="grad"`` and per-parameter settings of the clipping modules.

Semantics (the clipping guide, docs/guide/clipping.md, "Modules"):

- ``"update"``: transforms the update that flows down the chain; ``p.grad`` is not modified.
- ``"grad"``: transforms the gradient; later modules that read the gradient see the transformed
  one; if the update has not yet been formed, it is formed from the transformed gradient; after
  ``step()``, ``p.grad`` holds the transformed gradient (in place, as after
  ``torch.nn.utils.clip_grad_norm_``).
- A param-group key with the name of a module argument overrides the module's default for those
  parameters; ``Module.set_param_groups`` overrides both (override > group > default).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import torchzero as tz
from reference.clipping import (
    RefClipNormByEMA,
    RefClipNormGrowth,
    RefClipValueByEMA,
    RefClipValueGrowth,
    RefNormalizeByEMA,
    ref_centralize,
    ref_clip_norm,
    ref_clip_value,
    ref_normalize,
)

D = torch.float64
SHAPES = [(), (5,), (3, 4), (4, 3, 2, 2)]
STEPS = 4


def close(a: Tensor, b: Tensor, msg: str = "") -> None:
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=(lambda m: f"{msg}: {m}") if msg else None)


def grad_stream(shapes: list[tuple[int, ...]], steps: int = STEPS, seed: int = 0) -> list[list[Tensor]]:
    """Random gradients whose scale varies between steps and tensors (0.1 .. 10 times each)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        s0 = 10 ** (torch.rand((), generator=g, dtype=D).item() * 2 - 1)
        out.append([
            torch.randn(s, generator=g, dtype=D) * s0 * 10 ** (torch.rand((), generator=g, dtype=D).item() * 2 - 1)
            for s in shapes
        ])
    return out


def zero_params(shapes: list[tuple[int, ...]]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(s, dtype=D)) for s in shapes]


class Probe(tz.Transform):
    """Records the gradients and the update it sees; passes the update through unchanged.

    Being a ``target="update"`` transform, it forms the update (from the gradient) if no module did.
    """

    def __init__(self) -> None:
        super().__init__({}, uses_grad=True)
        self.seen_grads: list[list[Tensor]] = []
        self.seen_updates: list[list[Tensor]] = []

    def apply_tensors(self, tensors, states, settings, ctx):  # type: ignore[no-untyped-def]
        self.seen_grads.append([g.clone() for g in ctx.grads])
        self.seen_updates.append([t.clone() for t in tensors])
        return tensors


# (make(target) -> module, make_ref() -> reference step)
TARGET_CASES = [
    pytest.param(lambda t: tz.m.ClipValue(0.5, target=t), lambda: (lambda ts: ref_clip_value(ts, 0.5)), id="ClipValue"),
    pytest.param(lambda t: tz.m.ClipNorm(1.0, target=t), lambda: (lambda ts: ref_clip_norm(ts, 1.0)), id="ClipNorm"),
    pytest.param(lambda t: tz.m.ClipNorm(1.0, dim="global", target=t), lambda: (lambda ts: ref_clip_norm(ts, 1.0, dim="global")), id="ClipNorm-global"),
    pytest.param(lambda t: tz.m.Normalize(2.0, ord=1, dim=0, target=t), lambda: (lambda ts: ref_normalize(ts, 2.0, 1, 0)), id="Normalize"),
    pytest.param(lambda t: tz.m.Centralize(dim=0, inverse_dims=True, target=t), lambda: (lambda ts: ref_centralize(ts, 0, True)), id="Centralize"),
    pytest.param(lambda t: tz.m.ClipNormByEMA(0.5, target=t), lambda: RefClipNormByEMA(0.5).step, id="ClipNormByEMA"),
    pytest.param(lambda t: tz.m.NormalizeByEMA(0.5, tensorwise=False, target=t), lambda: RefNormalizeByEMA(0.5, tensorwise=False).step, id="NormalizeByEMA"),
    pytest.param(lambda t: tz.m.ClipValueByEMA(0.5, target=t), lambda: RefClipValueByEMA(0.5).step, id="ClipValueByEMA"),
    pytest.param(lambda t: tz.m.ClipValueGrowth(add=0.1, target=t), lambda: RefClipValueGrowth(add=0.1).step, id="ClipValueGrowth"),
    pytest.param(lambda t: tz.m.ClipNormGrowth(mul=1.2, target=t), lambda: RefClipNormGrowth(mul=1.2).step, id="ClipNormGrowth"),
]


# ============================================================================ targets
@pytest.mark.parametrize("make, make_ref", TARGET_CASES)
def test_target_update_leaves_grad_alone(make, make_ref):
    params = zero_params(SHAPES)
    opt = tz.Modular(params, make("update"))
    ref = make_ref()
    for k, grads in enumerate(grad_stream(SHAPES)):
        objs = [g.clone() for g in grads]
        with torch.no_grad():
            for p, g in zip(params, objs):
                p.zero_()
                p.grad = g
        opt.step()
        expected = ref([g.clone() for g in grads])
        for i, (p, g, orig, e) in enumerate(zip(params, objs, grads, expected)):
            assert p.grad is g, f"step {k}, param {i}: p.grad was replaced"
            assert torch.equal(p.grad, orig), f"step {k}, param {i}: p.grad was modified with target='update'"
            close(-p.detach(), e, f"step {k}, param {i}: update")


@pytest.mark.parametrize("make, make_ref", TARGET_CASES)
def test_target_grad_transforms_grad_in_place(make, make_ref):
    params = zero_params(SHAPES)
    opt = tz.Modular(params, make("grad"))
    ref = make_ref()
    changed = False
    for k, grads in enumerate(grad_stream(SHAPES)):
        objs = [g.clone() for g in grads]
        with torch.no_grad():
            for p, g in zip(params, objs):
                p.zero_()
                p.grad = g
        opt.step()
        expected = ref([g.clone() for g in grads])
        for i, (p, g, orig, e) in enumerate(zip(params, objs, grads, expected)):
            assert p.grad is g, f"step {k}, param {i}: p.grad must be modified in place, not replaced"
            close(p.grad, e, f"step {k}, param {i}: p.grad")
            # no module formed the update: it is formed from the transformed gradient
            close(-p.detach(), e, f"step {k}, param {i}: update")
            changed |= not torch.equal(p.grad, orig)
    assert changed, "the module never changed the gradient: the test is vacuous"


@pytest.mark.parametrize("make, make_ref", TARGET_CASES)
def test_target_grad_is_seen_by_later_modules(make, make_ref):
    params = zero_params(SHAPES)
    probe = Probe()
    opt = tz.Modular(params, make("grad"), probe)
    ref = make_ref()
    for k, grads in enumerate(grad_stream(SHAPES)):
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.zero_()
                p.grad = g.clone()
        opt.step()
        expected = ref([g.clone() for g in grads])
        for i, e in enumerate(expected):
            close(probe.seen_grads[k][i], e, f"step {k}, param {i}: gradient seen by the next module")
            close(probe.seen_updates[k][i], e, f"step {k}, param {i}: update formed by the next module")


@pytest.mark.parametrize("make, make_ref", TARGET_CASES)
def test_target_grad_after_the_update_was_formed(make, make_ref):
    """A module earlier in the chain formed the update from the raw gradient: a later
    ``target="grad"`` module changes ``p.grad`` but not that update."""
    params = zero_params(SHAPES)
    opt = tz.Modular(params, Probe(), make("grad"))
    ref = make_ref()
    for k, grads in enumerate(grad_stream(SHAPES)):
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.zero_()
                p.grad = g.clone()
        opt.step()
        expected = ref([g.clone() for g in grads])
        for i, (p, g, e) in enumerate(zip(params, grads, expected)):
            close(p.grad, e, f"step {k}, param {i}: p.grad")
            assert torch.equal(-p.detach(), g), f"step {k}, param {i}: the update formed before must not change"


def test_two_grad_targets_compose():
    params = zero_params(SHAPES)
    opt = tz.Modular(params, tz.m.ClipValue(0.3, target="grad"), tz.m.ClipNorm(0.5, dim="global", target="grad"))
    for k, grads in enumerate(grad_stream(SHAPES)):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        expected = ref_clip_norm(ref_clip_value(grads, 0.3), 0.5, dim="global")
        for i, (p, e) in enumerate(zip(params, expected)):
            close(p.grad, e, f"step {k}, param {i}")


@pytest.mark.parametrize("fused", [False, None], ids=["general-path", "fast-path"])
def test_grad_and_update_targets_give_the_same_trajectory(fused):
    """Clipping the gradient before Adam or clipping the update Adam is formed from is the same
    trajectory; only ``p.grad`` differs (transformed vs untouched). Bitwise on the general path;
    the fast path runs the two targets on different kernels (the update target on torchzero's
    CPU kernel, which only reads the gradient), equal up to rounding."""
    init = [torch.randn(s, generator=torch.Generator().manual_seed(1), dtype=D) for s in SHAPES]
    runs = {}
    for target in ("update", "grad"):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = tz.Modular(params, tz.m.ClipNorm(1.0, dim="global", target=target), tz.m.Adam(), tz.m.LR(1e-2), fused=fused)
        last = []
        for grads in grad_stream(SHAPES, steps=6, seed=3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
            last = grads
        runs[target] = params
        expected = ref_clip_norm(last, 1.0, dim="global")
        for p, g, e in zip(params, last, expected):
            close(p.grad, e if target == "grad" else g)
    for a, b in zip(runs["update"], runs["grad"]):
        if fused is False:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# ============================================================================ per-parameter settings
# module factory, setting name, (default, group value, override value), reference for one value
SETTING_CASES = [
    pytest.param(lambda v: tz.m.ClipValue(v), "value", (1.0, 0.3, 0.05), lambda v: (lambda ts: ref_clip_value(ts, v)), id="ClipValue-value"),
    pytest.param(lambda v: tz.m.ClipNorm(v), "max_norm", (1.0, 0.1, 0.01), lambda v: (lambda ts: ref_clip_norm(ts, v)), id="ClipNorm-max_norm"),
    pytest.param(lambda v: tz.m.ClipNorm(0.5, ord=v), "ord", (2, 1, math.inf), lambda v: (lambda ts: ref_clip_norm(ts, 0.5, v)), id="ClipNorm-ord"),
    pytest.param(lambda v: tz.m.ClipNorm(0.5, dim=v), "dim", (None, 0, 1), lambda v: (lambda ts: ref_clip_norm(ts, 0.5, dim=v)), id="ClipNorm-dim"),
    pytest.param(lambda v: tz.m.Normalize(v), "norm_value", (1.0, 3.0, 0.5), lambda v: (lambda ts: ref_normalize(ts, v)), id="Normalize-norm_value"),
    pytest.param(lambda v: tz.m.Centralize(dim=0, min_size=v), "min_size", (7, 1, 5), lambda v: (lambda ts: ref_centralize(ts, 0, min_size=v)), id="Centralize-min_size"),
    pytest.param(lambda v: tz.m.ClipNormByEMA(v), "beta", (0.9, 0.5, 0.1), lambda v: RefClipNormByEMA(v).step, id="ClipNormByEMA-beta"),
    pytest.param(lambda v: tz.m.NormalizeByEMA(0.5, max_ema_growth=v), "max_ema_growth", (1.01, None, 1.02), lambda v: RefNormalizeByEMA(0.5, max_ema_growth=v).step, id="NormalizeByEMA-max_ema_growth"),
    pytest.param(lambda v: tz.m.ClipValueByEMA(v), "beta", (0.99, 0.5, 0.0), lambda v: RefClipValueByEMA(v).step, id="ClipValueByEMA-beta"),
    pytest.param(lambda v: tz.m.ClipValueGrowth(mul=v), "mul", (1.5, 1.1, None), lambda v: RefClipValueGrowth(mul=v).step, id="ClipValueGrowth-mul"),
    pytest.param(lambda v: tz.m.ClipNormGrowth(max_decay=v), "max_decay", (2, None, 1.1), lambda v: RefClipNormGrowth(max_decay=v).step, id="ClipNormGrowth-max_decay"),
]
LAYER_SHAPES = [(3, 4), (2, 5), (4, 3), (6, 2)]


@pytest.mark.parametrize("make, key, values, make_ref", SETTING_CASES)
def test_settings_layering(make, key, values, make_ref):
    """a: default; b: param-group value; c: param-group value and an override; d: override only.
    Every module here is per tensor, so each parameter is compared with the reference run on it
    alone with its own value."""
    default, group_value, override = values
    a, b, c, d = params = zero_params(LAYER_SHAPES)
    module = make(default).set_param_groups([{"params": [c, d], key: override}])
    opt = tz.Modular([{"params": [a, d]}, {"params": [b, c], key: group_value}], module)
    value_of = {0: default, 1: group_value, 2: override, 3: override}
    refs = {i: make_ref(value_of[i]) for i in range(4)}
    # what b, c, d would get with the value of the layer below: must differ somewhere, else vacuous
    below = {1: make_ref(default), 2: make_ref(group_value), 3: make_ref(default)}
    observable = {1: False, 2: False, 3: False}
    for k, grads in enumerate(grad_stream(LAYER_SHAPES, steps=8, seed=7)):
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.zero_()
                p.grad = g.clone()
        opt.step()
        for i, (p, g) in enumerate(zip(params, grads)):
            (e,) = refs[i]([g.clone()])
            close(-p.detach(), e, f"step {k}, param {'abcd'[i]} ({key}={value_of[i]})")
            if i in below:
                observable[i] |= not torch.allclose(below[i]([g.clone()])[0], e, rtol=1e-6, atol=0)
    assert all(observable.values()), f"the layers are not observable with these values: {observable}"
    assert [q for grp in opt.param_groups for q in grp["params"]] == [a, d, b, c]


def test_param_group_max_norm():
    """The spec's example: ``{"params": biases, "max_norm": 0.1}``."""
    w = torch.nn.Parameter(torch.zeros(4, 3, dtype=D))
    b = torch.nn.Parameter(torch.zeros(4, dtype=D))
    opt = tz.Modular([{"params": [w]}, {"params": [b], "max_norm": 0.1}], tz.m.ClipNorm(1.0))
    w.grad = torch.full((4, 3), 10.0, dtype=D)
    b.grad = torch.full((4,), 10.0, dtype=D)
    opt.step()
    close(torch.linalg.vector_norm(w.detach()), torch.tensor(1.0, dtype=D))
    close(torch.linalg.vector_norm(b.detach()), torch.tensor(0.1, dtype=D))


def test_changing_a_group_value_takes_effect_on_the_next_step():
    """Param groups are live (as for a scheduler changing ``group["lr"]``)."""
    a = torch.nn.Parameter(torch.zeros(5, dtype=D))
    opt = tz.Modular([{"params": [a], "max_norm": 0.1}], tz.m.ClipNorm(1.0))
    for max_norm in (0.1, 0.7, 2.0):
        opt.param_groups[0]["max_norm"] = max_norm
        with torch.no_grad():
            a.zero_()
        a.grad = torch.full((5,), 3.0, dtype=D)
        opt.step()
        close(torch.linalg.vector_norm(a.detach()), torch.tensor(max_norm, dtype=D))


def test_a_group_key_applies_to_every_module_with_that_setting():
    shapes = [(3, 4), (6,)]
    params = zero_params(shapes)
    opt = tz.Modular([{"params": params[:1], "ord": 1}, {"params": params[1:]}], tz.m.ClipNorm(0.5), tz.m.Normalize(2.0))
    grads = grad_stream(shapes, steps=1, seed=6)[0]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    e0 = ref_normalize(ref_clip_norm([grads[0]], 0.5, 1), 2.0, 1)[0]
    e1 = ref_normalize(ref_clip_norm([grads[1]], 0.5, 2), 2.0, 2)[0]
    close(-params[0].detach(), e0)
    close(-params[1].detach(), e1)


def test_override_on_one_module_does_not_leak_into_another():
    """``set_param_groups`` overrides only the module it is called on."""
    p = torch.nn.Parameter(torch.zeros(5, dtype=D))
    first = tz.m.ClipNorm(1.0).set_param_groups([{"params": [p], "max_norm": 0.1}])
    opt = tz.Modular([p], first, tz.m.Normalize(3.0), tz.m.ClipNorm(2.0))
    g = torch.arange(1.0, 6.0, dtype=D)
    p.grad = g.clone()
    opt.step()
    # 0.1-clip, then normalize to 3, then 2-clip (not 0.1): norm 2
    close(torch.linalg.vector_norm(p.detach()), torch.tensor(2.0, dtype=D))


def test_apply_transform_uses_module_defaults_and_overrides():
    a, b = torch.full((4,), 5.0, dtype=D), torch.full((4,), 5.0, dtype=D)
    module = tz.m.ClipNorm(1.0).set_param_groups([{"params": [b], "max_norm": 0.2}])
    out = tz.apply_transform(module, [a, b], params=[a, b])
    close(torch.linalg.vector_norm(out[0]), torch.tensor(1.0, dtype=D))
    close(torch.linalg.vector_norm(out[1]), torch.tensor(0.2, dtype=D))


# ============================================================================ the fused fast path
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("target", ["update", "grad"], ids=lambda t: f"target={t}")
@pytest.mark.parametrize("name, ord", [("ClipNorm", 2), ("ClipNorm", math.inf), ("Normalize", 2), ("Normalize", "mad")],
                         ids=["ClipNorm-ord=2", "ClipNorm-ord=inf", "Normalize-ord=2", "Normalize-ord=mad"])
def test_fused_global_clip_adam_lr_agrees_with_the_general_chain(name, ord, target, dtype):
    """``[ClipNorm/Normalize(dim="global")] Adam LR`` may run through torch's fused Adam with the
    factor folded into ``grad_scale``: same parameters as the general chain, and the same ``p.grad``
    (raw with ``target="update"``, transformed with ``target="grad"``)."""
    ref_fn = ref_clip_norm if name == "ClipNorm" else ref_normalize
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    stream = [[torch.randn(s, generator=g, dtype=dtype) * 3 for s in SHAPES] for _ in range(4)]
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    results = {}
    for fused in (None, False):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = tz.Modular(params, getattr(tz.m, name)(1.0, ord=ord, dim="global", target=target), tz.m.Adam(), tz.m.LR(0.1), fused=fused)
        for grads in stream:
            for p, gr in zip(params, grads):
                p.grad = gr.clone()
            opt.step()
            expected = ref_fn([gr.double() for gr in grads], 1.0, ord, "global")
            for p, gr, e in zip(params, grads, expected):
                if target == "update":
                    assert torch.equal(p.grad, gr)
                else:
                    torch.testing.assert_close(p.grad, e.to(dtype), **tol)
        results[fused] = params
    for a, b in zip(results[None], results[False]):
        torch.testing.assert_close(a, b, **tol)


# ============================================================================ params without a gradient
@pytest.mark.parametrize("make, make_ref", [c for c in TARGET_CASES if c.id not in ("ClipNorm-global", "NormalizeByEMA")])
def test_params_without_grad_are_skipped_and_keep_their_state(make, make_ref):
    """(Per-tensor modules.) A parameter whose ``.grad`` is None on a step is not moved and its state
    is untouched: its results equal a reference that saw only the steps where it had a gradient."""
    params = zero_params(SHAPES)
    opt = tz.Modular(params, make("update"))
    has_grad = [[True, False, True, True], [False, True, True, False], [True, True, False, True], [True] * 4]  # per param
    refs = [make_ref() for _ in SHAPES]
    stream = grad_stream(SHAPES, steps=4, seed=8)
    for k, grads in enumerate(stream):
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                p.zero_()
                p.grad = g.clone() if has_grad[i % 4][k] else None
        opt.step()
        for i, (p, g) in enumerate(zip(params, grads)):
            if has_grad[i % 4][k]:
                close(-p.detach(), refs[i]([g.clone()])[0], f"step {k}, param {i}")
            else:
                assert (p == 0).all(), f"step {k}, param {i} moved without a gradient"
