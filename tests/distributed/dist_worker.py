"""One rank of the distributed tests: ``python dist_worker.py OUT_DIR TASK[:ARG[:ARG...]] ...``.

The tasks run one after another in one process group (starting processes is the slow part).
``RANK``, ``WORLD_SIZE`` and ``TZ_TEST_STORE`` (a FileStore path) come from the environment
(:func:`dist_helpers.launch` sets them). Each task writes its results with ``torch.save`` to
``OUT_DIR/<task>.pt`` (rank 0) or ``OUT_DIR/<task>.rank<r>.pt`` (every rank).
"""
from __future__ import annotations

import gc
import os
import sys
import time
import traceback
import warnings
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

import torchzero as tz
from dist_helpers import (
    FUSED_CASES,
    dcp_chain,
    full_params,
    func_tensors,
    functional_results,
    make_chain,
    make_model,
    match_checkpoint,
    poison_step,
    stats_values,
    train,
    CLOSURE_CASES,
    train_closure,
)


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """FSDP2: parameters become DTensors sharded on dim 0. One group for the whole (tiny) model,
    kept unsharded between forward and backward: the fewest collectives per step (what the
    optimizer sees does not depend on the grouping)."""
    fully_shard(model, reshard_after_forward=False)
    return model


def task_fsdp(rank: int, world: int, out: str, cases: str) -> None:
    """Each case: FSDP2 on this rank's share of the batch; rank 0 saves the full parameters.

    An error in a case is recorded and the next case runs (errors in torchzero code are raised
    on every rank alike, before the collectives of a step get out of step; a rank left waiting
    would time out after 60 s and fail the launch instead).
    """
    results, seconds = {}, {}
    for case in cases.split(","):
        t0 = time.perf_counter()
        try:
            modules, fused, dtype = make_chain(case)
            model = shard(make_model(dtype))
            opt = tz.Modular(model.parameters(), *modules, fused=fused)
            calls: list[bool] = []
            if case in FUSED_CASES:  # the fast path must have run (not silently the general chain)
                real = opt._fused_plan.run
                opt._fused_plan.run = lambda *a, **k: (calls.append(True), real(*a, **k))[1]
            train(model, opt, rank, world, dtype=dtype, poison_step=poison_step(case))
            skipped: list[int] = [0] * world
            dist.all_gather_object(skipped, opt.skipped_steps)
            try:
                stats = stats_values(opt)
            except Exception:
                stats = {"error": traceback.format_exc()}
            results[case] = {"params": full_params(model), "fused_steps": sum(calls), "skipped": skipped, "stats": stats}
        except Exception:
            results[case] = {"error": traceback.format_exc()}
        seconds[case] = time.perf_counter() - t0
    results["_seconds"] = seconds
    if rank == 0:
        torch.save(results, f"{out}/fsdp.pt")


def task_ddp(rank: int, world: int, out: str, cases: str, dtype: str) -> None:
    """Each case: DDP on this rank's share of the batch; every rank saves its parameters."""
    dt = getattr(torch, dtype)
    results = {}
    for case in cases.split(","):
        model = DDP(make_model(dt))
        modules, fused, _ = make_chain(case)
        opt = tz.Modular(model.parameters(), *modules, fused=fused)
        train(model, opt, rank, world, dtype=dt)
        results[case] = full_params(model)
    torch.save(results, f"{out}/ddp.rank{rank}.pt")


def task_dcp(rank: int, world: int, out: str, split: str, stop: str) -> None:
    """FSDP2 and torch.distributed.checkpoint: an uninterrupted run vs. one saved with ``dcp.save``
    after ``split`` steps, loaded with ``dcp.load`` into a NEW model and optimizer and continued."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    k, n = int(split), int(stop)
    ckpt_dir = f"{out}/dcp_checkpoint"

    def build():
        model = shard(make_model())
        return model, tz.Modular(model.parameters(), *dcp_chain())

    model, opt = build()
    train(model, opt, rank, world, stop=n)
    straight = full_params(model)

    model, opt = build()
    train(model, opt, rank, world, stop=k)
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=ckpt_dir)
    dist.barrier()
    del model, opt, msd, osd

    model, opt = build()  # a new model and optimizer; the load template is made from them
    msd, osd = get_state_dict(model, opt)
    match_checkpoint(osd, ckpt_dir, dict(model.named_parameters()))
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=ckpt_dir)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    train(model, opt, rank, world, start=k, stop=n)
    resumed = full_params(model)
    if rank == 0:
        torch.save({"straight": straight, "resumed": resumed}, f"{out}/dcp.pt")


def task_functional(rank: int, world: int, out: str) -> None:
    """The functional layer on tensors sharded on dim 0 (uneven, some shards empty) and a plain
    tensor; rank 0 saves the results, with whole-tensor values as plain tensors."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    ts = [distribute_tensor(t, mesh, [Shard(0)]) for t in func_tensors()]
    results = functional_results(ts, func_tensors()[0] * 2)
    # whole-tensor and global norms must come back as plain tensors, the same on every rank
    kinds = {k: type(v).__name__ for k, v in results.items() if not isinstance(v, list)}
    if rank == 0:
        torch.save({"results": results, "kinds": kinds}, f"{out}/functional.pt")


def task_ddp_closure(rank: int, world: int, out: str, cases: str) -> None:
    """Each case: a closure-driven chain (line search) under DDP, each rank on its share of
    the batch; every rank saves its parameters."""
    results = {}
    for case in cases.split(","):
        model = DDP(make_model(torch.float64))
        opt = tz.Modular(model.parameters(), *CLOSURE_CASES[case]())
        if case.endswith("-unseeded"):
            torch.manual_seed(1000 + rank)
        train_closure(model, opt, rank, world)
        results[case] = full_params(model)
    torch.save(results, f"{out}/ddp_closure.rank{rank}.pt")


TASKS = {"fsdp": task_fsdp, "ddp": task_ddp, "dcp": task_dcp, "functional": task_functional, "ddp_closure": task_ddp_closure}


def main() -> None:
    out, *specs = sys.argv[1:]
    warnings.simplefilter("ignore")  # skipped steps, DCP's notices: the logs are for errors
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    store = dist.FileStore(os.environ["TZ_TEST_STORE"], world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        for spec in specs:
            task, *args = spec.split(":")
            TASKS[task](rank, world, out, *args)
            gc.collect()  # models hold the process group in reference cycles: free them while it exists
            dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
