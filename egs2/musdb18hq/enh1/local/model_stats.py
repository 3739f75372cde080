#!/usr/bin/env python3
"""Parameter count and measured training memory of enh configs (for their header comments).

    local/model_stats.py conf/tuning/train_enh_bslocoformer.yaml [...] [--batch_sizes 1,2]
        [--device cpu|cuda] [--seconds S] [--write]

For every config the model is built exactly as ESPnet builds it (``EnhancementTask.build_model``,
so the plugin must be installed) and one training step is run in a fresh process: forward on a
random stereo mixture of the config's ``chunk_length`` (or ``--seconds``) with ``ref_num``
random stems, backward, AdamW step. Memory is the peak over that step, measured
- on ``cuda``: ``torch.cuda.max_memory_allocated`` (with bf16 autocast when the config sets
  ``use_amp``), i.e. what the GPU needs besides the CUDA context;
- on ``cpu``: peak resident memory during the step minus the resident memory before it, plus
  the parameters (fp32; activations dominate and match a GPU run without AMP).
Each batch size in ``--batch_sizes`` is measured (use ``--seconds`` to measure shorter segments
than the config's when memory is short); the memory at the config's ``batch_size`` and
``chunk_length`` is extrapolated linearly in batch x seconds (activations grow linearly with
both; attention uses ``scaled_dot_product_attention``, which keeps no attention matrix).
``--write`` replaces the config's ``# Parameters:`` and ``# Training memory:`` header lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import yaml
from textio import write_text_atomic

GIB = 1024**3


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(config: Path, batch_size: int, device: str, seconds: float | None) -> dict:
    """Build the model of ``config`` and run one training step; returns params and bytes."""
    import torch
    from espnet2.tasks.enh import EnhancementTask

    args = EnhancementTask.get_parser().parse_args(["--config", str(config)])
    torch.manual_seed(0)
    model = EnhancementTask.build_model(args).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    conf = yaml.safe_load(config.read_text(encoding="utf-8"))
    rate = int(
        conf.get("separator_conf", {}).get("sample_rate")
        or conf.get("encoder_conf", {}).get("default_fs")
        or 44100
    )
    length = int(seconds * rate) if seconds else int(conf["chunk_length"])
    refs = len(conf.get("separator_conf", {}).get("stem_names") or []) or 4
    channels = 2
    mix = 0.1 * torch.randn(batch_size, length, channels, device=device)
    batch = {f"speech_ref{i + 1}": 0.05 * torch.randn_like(mix) for i in range(refs)}
    lengths = torch.full((batch_size,), length, dtype=torch.long, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    use_amp = bool(conf.get("use_amp")) and device.startswith("cuda")

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
        loss, _, _ = model(mix, lengths, **batch)
    loss.backward()
    optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        base -= 4 * params  # count the parameters themselves
    return {
        "params": params,
        "batch_size": batch_size,
        "samples": length,
        "rate": rate,
        "bytes": peak - base,
    }


def measure_in_subprocess(config: Path, batch_size: int, device: str, seconds) -> dict:
    """Run ``measure`` in a fresh interpreter so that peak memory is this step's alone."""
    cmd = [sys.executable, __file__, "--_child", str(config), "--device", device]
    cmd += ["--batch_sizes", str(batch_size)]
    if seconds:
        cmd += ["--seconds", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{config}: measurement failed (batch {batch_size}): {tail}")
    return json.loads(lines[-1])


def linear_estimate(points: list[tuple[float, float]], size: float) -> float:
    """Memory at ``size`` (batch x seconds) from measured (size, bytes) points, by a line."""
    if len(points) == 1:
        ((s0, m0),) = points
        return m0 * size / s0
    (s0, m0), (s1, m1) = points[0], points[-1]
    slope = (m1 - m0) / (s1 - s0)
    return m0 + slope * (size - s0)


def header_lines(config: Path, results: list[dict], device: str) -> tuple[str, str]:
    """The two header comment lines for ``config``.

    Activation memory grows linearly with batch size x segment length (attention runs through
    ``scaled_dot_product_attention``, which does not store the attention matrix), so the
    measured points are extrapolated along that product to the config's own batch and segment.
    """
    conf = yaml.safe_load(config.read_text(encoding="utf-8"))
    batch = int(conf.get("batch_size", 1))
    rate = results[0]["rate"]
    seconds = int(conf.get("chunk_length", results[0]["samples"])) / rate
    measured_s = results[0]["samples"] / rate
    points = [(r["batch_size"] * r["samples"] / rate, r["bytes"]) for r in results]
    estimate = linear_estimate(points, batch * seconds)
    measured = ", ".join(f"{r['bytes'] / GIB:.2f} GiB at batch {r['batch_size']}" for r in results)
    how = "GPU, bf16 AMP" if device.startswith("cuda") and conf.get("use_amp") else device.upper()
    how += ", fp32" if "AMP" not in how else ""
    exact = measured_s == seconds and any(r["batch_size"] == batch for r in results)
    derived = "measured" if exact else "linear in batch x seconds from"
    params = f"# Parameters: {results[0]['params'] / 1e6:.2f} M ({results[0]['params']:,})"
    memory = (
        f"# Training memory: {estimate / GIB:.1f} GiB for batch_size {batch} x {seconds:g} s "
        f"({how}; {derived} {measured} x {measured_s:g} s; local/model_stats.py)"
    )
    return params, memory


def write_header(config: Path, params: str, memory: str) -> None:
    """Replace the ``# Parameters:`` / ``# Training memory:`` lines of ``config`` in place."""
    text = config.read_text(encoding="utf-8")
    for prefix, line in (("# Parameters:", params), ("# Training memory:", memory)):
        pattern = re.compile(rf"^{re.escape(prefix)}.*$", re.MULTILINE)
        if not pattern.search(text):
            raise RuntimeError(f"{config}: no '{prefix}' line to replace")
        text = pattern.sub(line.replace("\\", "\\\\"), text, count=1)
    write_text_atomic(config, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="+")
    parser.add_argument("--batch_sizes", default="1,2", help="measured batch sizes, e.g. 1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=None, help="default: chunk_length")
    parser.add_argument("--write", action="store_true", help="update the config headers")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    if args._child:
        print(json.dumps(measure(args.configs[0], batch_sizes[0], args.device, args.seconds)))
        return 0
    status = 0
    for config in args.configs:
        try:
            results = [
                measure_in_subprocess(config, b, args.device, args.seconds) for b in batch_sizes
            ]
        except RuntimeError as err:
            print(f"model_stats.py: error: {err}", file=sys.stderr)
            status = 1
            continue
        params, memory = header_lines(config, results, args.device)
        print(f"{config}\n  {params}\n  {memory}")
        if args.write:
            try:
                write_header(config, params, memory)
            except RuntimeError as err:
                print(f"model_stats.py: error: {err}", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
