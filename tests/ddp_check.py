"""Two-process CPU (gloo) DistributedDataParallel steps of ESPnet's enhancement model.

usage: python tests/ddp_check.py OUT.json CONFIG.yaml [CONFIG.yaml ...]

For each config, both ranks build the model with ``EnhancementTask.build_model``, wrap it in
``DistributedDataParallel(find_unused_parameters=False)`` (what ESPnet's ``--ngpu N`` does) and
run two optimiser steps on different stereo 4-stem batches. DDP itself raises at the second
forward if the first backward left a trainable parameter without gradient; the script also
records, per rank, the trainable parameters without gradient and a checksum of the
all-reduced gradients. Rank 0 writes ``{config: {"rank0": {...}, "rank1": {...}}}`` to
OUT.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plugin_env import build_model  # noqa: E402

WORLD = 2


def stereo_batch(seed: int, b: int = 2, length: int = 1200) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    refs = {f"speech_ref{k + 1}": 0.1 * torch.randn(b, length, 2, generator=g) for k in range(4)}
    return dict(speech_mix=sum(refs.values()), speech_mix_lengths=torch.full((b,), length), **refs)


def run_config(rank: int, config: str) -> dict:
    torch.manual_seed(0)
    model = build_model(Path(config)).train()
    ddp = DistributedDataParallel(model, find_unused_parameters=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    result = {}
    for step in range(2):
        loss, _, _ = ddp(**stereo_batch(seed=100 * rank + step))
        opt.zero_grad()
        loss.mean().backward()
        # frozen parameters (RoPE's inverse frequencies) are not DDP's business
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        result = {
            "num_params": len(named),
            "without_grad": [n for n, p in named if p.grad is None],
            "grad_checksum": float(
                sum(p.grad.double().abs().sum() for _, p in named if p.grad is not None)
            ),
            "loss": float(loss.detach().mean()),
        }
        opt.step()
    return result


def worker(rank: int, init_file: str, configs: list[str], out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {c: run_config(rank, c) for c in configs}
        gathered = [None] * WORLD
        dist.all_gather_object(gathered, results)
        if rank == 0:
            merged = {c: {f"rank{r}": gathered[r][c] for r in range(WORLD)} for c in configs}
            Path(out).write_text(json.dumps(merged, indent=1))
        # leave together: a rank tearing gloo down while its peer is still connected can
        # abort the peer ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    out, configs = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(f"{tmp}/init", configs, out), nprocs=WORLD, join=True)


if __name__ == "__main__":
    main()
