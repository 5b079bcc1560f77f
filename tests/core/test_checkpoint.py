"""Checkpoints: save -> torch.load(weights_only=True) -> new model and optimizer -> bitwise resume."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

import torchzero as tz

SCRIPT = textwrap.dedent(
    """
    import sys, torch, torchzero as tz

    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        opt = tz.Modular(
            [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 3e-3, "max_norm": 0.5}],
            tz.m.ClipNorm(1.0, dim="global", target="grad"),
            [tz.m.ClipNormByEMA(0.9, inner=[tz.m.Adam(amsgrad=True), tz.m.ClipValueGrowth()]), tz.m.ClipNormGrowth(parameterwise=False)],
            tz.m.ClipNorm(1.0),
            tz.m.LR(1e-2),
        )
        sched = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)
        return model, opt, sched

    def train(model, opt, sched, start, stop):
        for step in range(start, stop):
            g = torch.Generator().manual_seed(step)
            x = torch.randn(16, 4, generator=g)
            loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()

    mode, path, n, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model, opt, sched = build()
    if mode == "save":
        train(model, opt, sched, 0, n)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, path)
    elif mode == "resume":
        ckpt = torch.load(path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        train(model, opt, sched, n, total)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    else:
        train(model, opt, sched, 0, total)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    """
)


def _run(tmp: Path, *args: str) -> None:
    script = tmp / "ckpt_script.py"
    script.write_text(SCRIPT)
    root = str(Path(tz.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=300, env=env)


def _assert_state_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _assert_state_equal(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype, k
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_resume_in_new_process_is_bitwise(tmp_path):
    n, total = 25, 50
    _run(tmp_path, "save", str(tmp_path / "resumed.pt"), str(n), str(total))
    _run(tmp_path, "resume", str(tmp_path / "resumed.pt"), str(n), str(total))
    _run(tmp_path, "full", str(tmp_path / "full.pt"), str(n), str(total))
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    full = torch.load(tmp_path / "full.pt", weights_only=True)
    _assert_state_equal(resumed["model"], full["model"])
    _assert_state_equal(resumed["opt"]["state"], full["opt"]["state"])
    assert resumed["opt"]["param_groups"] == full["opt"]["param_groups"]


def test_state_dict_is_deterministic_and_has_no_ids():
    def make():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        opt = tz.Modular(model, tz.m.Adam(inner=tz.m.ClipNormByEMA()), tz.m.LR(0.1))
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        return opt.state_dict()

    a, b = make(), make()
    assert list(a["state"]) == [0, 1]
    assert sorted(a["state"][0]) == sorted(["0.step", "0.exp_avg", "0.exp_avg_sq", "0.inner.ema", "0.inner.ema_norm", "0.inner.divisor"])
    _assert_state_equal(a["state"], b["state"])


def test_state_keeps_its_dtype_on_load():
    # torch.optim casts floating state to the parameter dtype; a float32 norm kept for a
    # float16 parameter must come back as float32.
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    opt = tz.Modular([p], tz.m.ClipNormGrowth(), tz.m.LR(0.1))
    p.grad = torch.ones(3, dtype=torch.float16)
    opt.step()
    sd = opt.state_dict()
    assert sd["state"][0]["0.prev_norm"].dtype == torch.float32
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    opt2 = tz.Modular([q], tz.m.ClipNormGrowth(), tz.m.LR(0.1))
    opt2.load_state_dict(sd)
    assert opt2.state[q]["0.prev_norm"].dtype == torch.float32


def test_load_rebinds_settings_to_new_groups():
    # torch replaces param-group dicts on load; schedulers must still reach the LR module
    a = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([a], tz.m.LR(0.1))
    opt.load_state_dict(opt.state_dict())
    opt.param_groups[0]["lr"] = 0.5
    a.grad = torch.ones(2)
    opt.step()
    torch.testing.assert_close(a.detach(), torch.full((2,), 0.5))


def test_state_dict_hooks_fire():
    a = torch.nn.Parameter(torch.ones(2))
    opt = tz.Modular([a], tz.m.Adam(), tz.m.LR(0.1))
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("sd-pre"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd-post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load-pre"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load-post"))
    opt.load_state_dict(opt.state_dict())
    assert calls == ["sd-pre", "sd-post", "load-pre", "load-post"]


def test_module_state_dict_includes_children():
    clip = tz.m.ClipNormByEMA(inner=tz.m.Adam())
    (p,) = [torch.nn.Parameter(torch.randn(3))]
    tz.apply_transform(clip, [torch.randn(3)], params=[p])
    sd = clip.state_dict()
    assert set(sd["state"][0]) == {"ema", "ema_norm", "divisor"}
    assert set(sd["children"]["inner"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    clip2 = tz.m.ClipNormByEMA(inner=tz.m.Adam())
    tz.apply_transform(clip2, [torch.randn(3)], params=[p])  # binds the same parameter
    clip2.load_state_dict(sd)
    _assert_state_equal(clip2.state_dict(), sd)
    clip2.reset()
    assert not clip2.state and not clip2.children["inner"].state
