"""Adversarial cases for the checks of tensors against their parameters (torchzero/core/state_check.py).

Each case builds an optimizer, trains it a little, then changes the model, the state or the
checkpoint in a way that once made a fused kernel read or write out of bounds (an abort, a
segfault, a hang) or silently produced NaN. Run as a script, it runs every case in this process
and prints one line per case, ``CASE <name>: ok`` or ``CASE <name>: <ExceptionType>: <message>``,
flushed before the next case starts: ``test_state_check.py`` runs it in a subprocess (once with
torchzero's CPU kernels, once with torch's fused kernels), so a crash fails a test instead of
killing the suite, and tells which case crashed.
"""
from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

import torchzero as tz


@dataclass(frozen=True)
class Expect:
    """What a case must end with: no error (``exc=None``), or ``exc`` with ``match`` in its message."""

    exc: type[BaseException] | None = None
    match: str = ""


def _model(dtype: torch.dtype = torch.float32, shape: tuple[int, int] = (4, 3)) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(shape[1], shape[0]).to(dtype)


def _chain(kind: str = "clip-adam") -> list:
    if kind == "clip-adam":
        return [tz.m.ClipNorm(1.0), tz.m.Adam(), tz.m.LR(1e-2)]
    if kind == "adamw":
        return [tz.m.Adam(), tz.m.WeightDecay(0.01), tz.m.LR(1e-2)]
    if kind == "amsgrad":
        return [tz.m.Adam(amsgrad=True), tz.m.LR(1e-2)]
    if kind == "rmsprop":
        return [tz.m.RMSprop(), tz.m.LR(1e-2)]
    if kind == "adagrad":
        return [tz.m.Adagrad(), tz.m.LR(1e-2)]
    if kind == "lion":
        return [tz.m.Lion(), tz.m.LR(1e-2)]
    if kind == "momentum":
        return [tz.m.HeavyBall(0.9), tz.m.LR(1e-2)]
    raise ValueError(kind)


def _step(m: torch.nn.Linear, opt: tz.Modular) -> None:
    x = torch.randn(8, m.in_features, dtype=m.weight.dtype)
    opt.zero_grad()
    m(x).pow(2).sum().backward()
    opt.step()


def _trained(kind: str = "clip-adam", dtype: torch.dtype = torch.float32, steps: int = 3):
    m = _model(dtype)
    opt = tz.Modular(m.named_parameters(), *_chain(kind))
    for _ in range(steps):
        _step(m, opt)
    return m, opt


def _unchanged_after(fn: Callable[[tz.Modular, torch.nn.Linear], None], kind: str = "clip-adam") -> None:
    """Runs ``fn`` (which must raise) and checks the optimizer then steps bitwise like an untouched twin."""
    import copy

    m, opt = _trained(kind)
    twin_m = copy.deepcopy(m)
    twin = tz.Modular(twin_m.named_parameters(), *_chain(kind))
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    try:
        fn(opt, m)
    except Exception:
        for _ in range(2):
            torch.manual_seed(1)
            _step(m, opt)
            torch.manual_seed(1)
            _step(twin_m, twin)
        for a, b in zip(m.parameters(), twin_m.parameters()):
            if not torch.equal(a, b):
                raise AssertionError("the optimizer changed although the operation failed") from None
        raise
    raise AssertionError("expected an error")


# ------------------------------------------------------------------------------- the cases
def model_double_mid_training() -> None:
    m, opt = _trained()
    m.double()
    _step(m, opt)


def model_half_mid_training() -> None:
    m, opt = _trained()
    m.half()
    _step(m, opt)


def model_double_then_reload_converts() -> None:
    m, opt = _trained()
    m.double()
    opt.load_state_dict(opt.state_dict())
    _step(m, opt)
    assert all(v.dtype == torch.float64 for k, v in opt.state[m.weight].items() if k != "1.step")
    assert m.weight.isfinite().all()


def pdata_larger_with_stale_grad() -> None:
    m, opt = _trained()
    m.weight.grad = torch.ones_like(m.weight)
    m.weight.data = torch.randn(40, 3)
    opt.step()


def pdata_larger_with_new_grad() -> None:
    m, opt = _trained()
    m.weight.data = torch.randn(40, 3)
    m.weight.grad = torch.randn(40, 3)
    m.bias.grad = None
    opt.step()


def pdata_smaller_1d() -> None:
    m, opt = _trained()
    m.bias.data = torch.randn(2)
    m.bias.grad = torch.randn(2)
    m.weight.grad = None
    opt.step()


def pdata_same_numel_other_shape() -> None:
    m, opt = _trained()
    m.weight.data = torch.randn(3, 4)
    m.weight.grad = torch.randn(3, 4)
    m.bias.grad = None
    opt.step()


def state_written_wrong_shape() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg"] = torch.zeros(3)
    _step(m, opt)


def state_written_fewer_elements_1d() -> None:
    m, opt = _trained()
    opt.state[m.bias]["1.exp_avg_sq"] = torch.zeros(1)
    _step(m, opt)


def state_written_wrong_dtype() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg"] = torch.zeros(4, 3, dtype=torch.float64)
    _step(m, opt)


def state_written_none() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg"] = None
    _step(m, opt)


def state_written_number() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg_sq"] = 0.0
    _step(m, opt)


def state_written_meta() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg"] = torch.zeros(4, 3, device="meta")
    _step(m, opt)


def state_written_transposed_steps_correctly() -> None:
    m, opt = _trained()
    ref_m, ref = _trained()
    t = opt.state[m.weight]["1.exp_avg"]
    opt.state[m.weight]["1.exp_avg"] = t.t().contiguous().t()  # same values, other strides
    torch.manual_seed(5)
    _step(m, opt)
    torch.manual_seed(5)
    _step(ref_m, ref)
    assert torch.allclose(m.weight, ref_m.weight, rtol=1e-6, atol=1e-7)


def state_written_expanded() -> None:
    m, opt = _trained()
    opt.state[m.weight]["1.exp_avg"] = torch.zeros(3).expand(4, 3)
    _step(m, opt)


def amsgrad_max_wrong_shape() -> None:
    m, opt = _trained("amsgrad")
    opt.state[m.weight]["0.max_exp_avg_sq"] = torch.zeros(2)
    _step(m, opt)


def rmsprop_state_wrong_shape() -> None:
    m, opt = _trained("rmsprop")
    opt.state[m.weight]["0.exp_avg_sq"] = torch.zeros(5)
    _step(m, opt)


def adagrad_state_wrong_dtype() -> None:
    m, opt = _trained("adagrad")
    opt.state[m.weight]["0.sum"] = torch.zeros(4, 3, dtype=torch.float64)
    _step(m, opt)


def lion_state_wrong_shape() -> None:
    m, opt = _trained("lion")
    opt.state[m.weight]["0.exp_avg"] = torch.zeros(12)
    _step(m, opt)


def momentum_buffer_wrong_shape() -> None:
    m, opt = _trained("momentum")
    opt.state[m.weight]["0.momentum_buffer"] = torch.zeros(1)
    _step(m, opt)


def checkpoint_float64_into_float32() -> None:
    m64, opt64 = _trained(dtype=torch.float64)
    m, opt = _trained(steps=0)
    opt.load_state_dict(opt64.state_dict())
    assert opt.state[m.weight]["1.exp_avg"].dtype == torch.float32
    _step(m, opt)
    assert m.weight.isfinite().all()


def checkpoint_float32_into_double_model() -> None:
    _, opt32 = _trained()
    m = _model(torch.float64)
    opt = tz.Modular(m.named_parameters(), *_chain())
    opt.load_state_dict(opt32.state_dict())
    assert opt.state[m.weight]["1.exp_avg"].dtype == torch.float64
    _step(m, opt)
    assert m.weight.isfinite().all()


def checkpoint_other_shapes() -> None:
    _, opt = _trained()
    m2 = _model(shape=(5, 2))
    opt2 = tz.Modular(m2.named_parameters(), *_chain())
    opt2.load_state_dict(opt.state_dict())


def checkpoint_1d_shape_mismatch() -> None:
    _, opt = _trained()
    sd = opt.state_dict()
    sd["state"][1]["1.exp_avg"] = torch.zeros(2)
    _unchanged_after(lambda o, m: o.load_state_dict(sd))


def checkpoint_same_numel_other_shape() -> None:
    _, opt = _trained()
    sd = opt.state_dict()
    sd["state"][0]["1.exp_avg_sq"] = torch.zeros(12)
    _unchanged_after(lambda o, m: o.load_state_dict(sd))


def checkpoint_step_as_int_converted() -> None:
    m, opt = _trained()
    sd = opt.state_dict()
    for s in sd["state"].values():
        s["1.step"] = int(s["1.step"])
    opt.load_state_dict(sd)
    step = opt.state[m.weight]["1.step"]
    assert isinstance(step, torch.Tensor) and step.ndim == 0 and step.dtype == torch.float32 and step.item() == 3
    _step(m, opt)
    assert opt.state[m.weight]["1.step"].item() == 4


def checkpoint_step_vector_rejected() -> None:
    _, opt = _trained()
    sd = opt.state_dict()
    sd["state"][0]["1.step"] = torch.tensor([3.0, 4.0])
    _unchanged_after(lambda o, m: o.load_state_dict(sd))


def adamw_double_mid_training() -> None:
    m, opt = _trained("adamw")
    m.double()
    _step(m, opt)


def failed_step_changes_nothing() -> None:
    m, opt = _trained()
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[m.weight].items()}
    w = m.weight.detach().clone()
    opt.state[m.bias]["1.exp_avg"] = torch.zeros(7)
    try:
        _step(m, opt)
    except RuntimeError:
        pass
    else:
        raise AssertionError("expected an error")
    assert torch.equal(m.weight, w), "the parameters moved although the step failed"
    for k, v in opt.state[m.weight].items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(before[k])), f"{k} changed although the step failed"


def meta_parameters_step() -> None:
    w = torch.nn.Parameter(torch.empty(4, 3, device="meta"))
    opt = tz.Modular([w], *_chain())
    w.grad = torch.empty(4, 3, device="meta")
    opt.step()
    opt.step()
    assert opt.state[w]["1.exp_avg"].is_meta


CASES: dict[str, tuple[Callable[[], None], Expect]] = {
    "model_double_mid_training": (model_double_mid_training, Expect(RuntimeError, "float64")),
    "model_half_mid_training": (model_half_mid_training, Expect(RuntimeError, "float16")),
    "model_double_then_reload_converts": (model_double_then_reload_converts, Expect()),
    "pdata_larger_with_stale_grad": (pdata_larger_with_stale_grad, Expect(RuntimeError, "gradient of parameter 0 \\('weight'\\)")),
    "pdata_larger_with_new_grad": (pdata_larger_with_new_grad, Expect(RuntimeError, "\\(4, 3\\).*\\(40, 3\\)")),
    "pdata_smaller_1d": (pdata_smaller_1d, Expect(RuntimeError, "parameter 1 \\('bias'\\)")),
    "pdata_same_numel_other_shape": (pdata_same_numel_other_shape, Expect(RuntimeError, "\\(3, 4\\)")),
    "state_written_wrong_shape": (state_written_wrong_shape, Expect(RuntimeError, "'exp_avg'")),
    "state_written_fewer_elements_1d": (state_written_fewer_elements_1d, Expect(RuntimeError, "'exp_avg_sq'")),
    "state_written_wrong_dtype": (state_written_wrong_dtype, Expect(RuntimeError, "float64")),
    "state_written_none": (state_written_none, Expect(RuntimeError, "NoneType, not a tensor")),
    "state_written_number": (state_written_number, Expect(RuntimeError, "float, not a tensor")),
    "state_written_meta": (state_written_meta, Expect(RuntimeError, "meta")),
    "state_written_transposed_steps_correctly": (state_written_transposed_steps_correctly, Expect()),
    "state_written_expanded": (state_written_expanded, Expect(RuntimeError, "expanded")),
    "amsgrad_max_wrong_shape": (amsgrad_max_wrong_shape, Expect(RuntimeError, "'max_exp_avg_sq'")),
    "rmsprop_state_wrong_shape": (rmsprop_state_wrong_shape, Expect(RuntimeError, "RMSprop")),
    "adagrad_state_wrong_dtype": (adagrad_state_wrong_dtype, Expect(RuntimeError, "Adagrad")),
    "lion_state_wrong_shape": (lion_state_wrong_shape, Expect(RuntimeError, "Lion")),
    "momentum_buffer_wrong_shape": (momentum_buffer_wrong_shape, Expect(RuntimeError, "HeavyBall")),
    "checkpoint_float64_into_float32": (checkpoint_float64_into_float32, Expect()),
    "checkpoint_float32_into_double_model": (checkpoint_float32_into_double_model, Expect()),
    "checkpoint_other_shapes": (checkpoint_other_shapes, Expect(ValueError, "shape")),
    "checkpoint_1d_shape_mismatch": (checkpoint_1d_shape_mismatch, Expect(ValueError, "nothing was changed")),
    "checkpoint_same_numel_other_shape": (checkpoint_same_numel_other_shape, Expect(ValueError, "\\(12,\\)")),
    "checkpoint_step_as_int_converted": (checkpoint_step_as_int_converted, Expect()),
    "checkpoint_step_vector_rejected": (checkpoint_step_vector_rejected, Expect(ValueError, "step")),
    "adamw_double_mid_training": (adamw_double_mid_training, Expect(RuntimeError, "float64")),
    "failed_step_changes_nothing": (failed_step_changes_nothing, Expect()),
    "meta_parameters_step": (meta_parameters_step, Expect()),
}


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        fn, _ = CASES[name]
        try:
            fn()
        except Exception as e:  # noqa: BLE001 (reported, and judged by the test)
            msg = " ".join(str(e).split())
            print(f"CASE {name}: {type(e).__name__}: {msg}", flush=True)
            if isinstance(e, AssertionError):
                traceback.print_exc()
        else:
            print(f"CASE {name}: ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
