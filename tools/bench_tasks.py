"""Measurements behind ``tools/benchmark.py``: models from recipe configs, timed separation,
and the peak-memory and training workers that each run in a fresh process.

Run as a worker (the benchmark does this; the last stdout line is the JSON result)::

    python tools/bench_tasks.py memory CONFIG --audio song.wav
    python tools/bench_tasks.py train CONFIG --steps 3

Memory figures are peak resident set sizes (``VmHWM``) of the worker process, so they include
torch itself and the model; on CUDA the peak of ``torch.cuda.max_memory_allocated`` is given too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from standalone.api import Separator  # noqa: E402
from standalone.checkpoint import (  # noqa: E402
    build_separator,
    describe_config,
    training_segment,
)
from standalone.perf import is_plain, plain_mode  # noqa: E402
from standalone.stft import istft, stft  # noqa: E402

DEFAULT_FS = 44100  # for configs that record no sample rate
DEFAULT_TRAIN_SEGMENT_S = 6.0  # for configs that record no training segment
GIB = 1024**3


# ------------------------------------------------------------------------------------ configs
class BenchConfig:
    """A recipe config (ESPnet ``train_enh_*.yaml``) reduced to what the benchmark needs.

    Attributes: ``path``, ``name`` (file stem), ``conf`` (the parsed YAML), ``fs`` (Hz),
    ``segment`` (training segment in samples), ``batch_size``, ``segment_source`` (which
    config key gave the segment, or ``"assumed"``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = self.path.stem
        try:
            with open(self.path, encoding="utf-8") as f:
                conf = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as err:
            reason = str(err).splitlines()[0]
            raise SystemExit(f"error: {self.path}: cannot read config ({reason})") from None
        if not isinstance(conf, dict) or "separator" not in conf:
            raise SystemExit(f"error: {self.path}: not an ESPnet enhancement config")
        self.conf = conf
        sep_conf = conf.get("separator_conf") or {}
        enc = conf.get("encoder_conf") or {}
        self.fs = int(sep_conf.get("sample_rate") or enc.get("default_fs") or DEFAULT_FS)
        self.batch_size = int(conf.get("batch_size") or 1)
        self.segment, self.segment_source = self._segment()

    def _segment(self) -> tuple[int, str]:
        """Training segment in samples (``checkpoint.training_segment``), else
        ``DEFAULT_TRAIN_SEGMENT_S``."""
        return training_segment(self.conf) or (round(DEFAULT_TRAIN_SEGMENT_S * self.fs), "assumed")

    def build(self, device: str | torch.device = "cpu", **overrides) -> torch.nn.Module:
        """The separator with random weights (``overrides`` replace ``separator_conf`` keys)."""
        sep_conf = {**(self.conf.get("separator_conf") or {}), **overrides}
        return build_separator(self.conf["separator"], sep_conf).to(device)

    def info(self, model: torch.nn.Module) -> dict:
        """What ``standalone.api.Separator`` needs (as ``load_separator`` would return it)."""
        info = describe_config(self.conf, model)
        info["fs"] = info["fs"] or self.fs
        return info

    def summary(self, model: torch.nn.Module) -> dict:
        sep_conf = self.conf.get("separator_conf") or {}
        keys = ("n_layers", "emb_dim", "ffn_hidden_dim", "attention_dim", "n_heads")
        return {
            "config": self.name,
            "path": str(self.path),
            "separator": self.conf["separator"],
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            **{k: sep_conf.get(k) for k in keys},
            "fs": self.fs,
            "n_fft": self.info(model)["n_fft"],
            "hop_length": self.info(model)["hop_length"],
        }


# ------------------------------------------------------------------------------------ machine
def machine_info(device: str) -> dict:
    """CPU model, cores, threads, memory, load, library versions (and the GPU on CUDA)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
    }
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / GIB, 1),
            cuda=torch.version.cuda,
        )
    return info


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``; ``ru_maxrss`` where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    """Current resident set size (``VmRSS``; 0 where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for ``precision="bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def test_signal(seconds: float, fs: int, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """``[channels, seconds * fs]`` float32 noise at about -20 dBFS (the content does not
    change the compute)."""
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(channels, round(seconds * fs), generator=g)


# ------------------------------------------------------------------------------ separation RTF
def make_separator(cfg: BenchConfig, device: str, precision: str) -> Separator:
    """A ``standalone.api.Separator`` (the code path of ``separate.py``) with random weights.

    On CUDA with bf16 the model is built with ``flash_attention=True`` (the flash kernel)."""
    overrides = {}
    if torch.device(device).type == "cuda" and precision == "bf16":
        overrides["flash_attention"] = True
    model = cfg.build(device, **overrides).eval()
    return Separator(model, cfg.info(model), device=device)


def time_separation(
    sep: Separator,
    seconds: float,
    repeats: int,
    precision: str = "fp32",
    plain: bool = True,
    compile_model: bool = False,
) -> dict:
    """Real-time factor of ``sep`` on ``seconds`` of stereo noise, fast and plain forms.

    The fast and plain runs alternate (after one warm-up of the fast form), so load from
    other processes hits both alike; ``speedup`` is the median of the per-pair ratios.
    ``max_abs_diff`` compares the stems of the two forms.  With ``compile_model`` the network
    is wrapped in ``torch.compile`` first and ``compile_s`` is the extra time of its first
    call (plain runs are then skipped: dynamo would trace the plain forms anew).
    """
    device = sep.device
    wav = test_signal(seconds, sep.sample_rate or DEFAULT_FS, channels=max(sep.num_channels, 2))
    fs = sep.sample_rate or DEFAULT_FS

    cpu_times: dict[bool, list[float]] = {False: [], True: []}

    def run(audio: torch.Tensor = wav) -> tuple[float, dict[str, torch.Tensor]]:
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        with autocast(device, precision):
            out = sep(audio, fs)
        synchronize(device)
        cpu_times[is_plain()].append(time.process_time() - start_cpu)
        return time.perf_counter() - start, out

    result: dict = {"seconds": seconds, "repeats": repeats, "precision": precision}
    if compile_model:
        eager_s, _ = run()
        sep.model = torch.compile(sep.model)
        first_s, _ = run()
        result["compile_s"] = round(first_s - eager_s, 2)
        plain = False
    else:
        # warm-up (allocator, oneDNN/cuBLAS kernels) on one chunk: the shapes of every full
        # chunk of the timed runs
        run(wav[:, : round(min(seconds, sep.segment or seconds) * fs)])
    fast, slow, ratios, diff = [], [], [], 0.0
    nonfinite = 0
    for _ in range(repeats):
        t_fast, out_fast = run()
        fast.append(t_fast)
        nonfinite = max(nonfinite, sum(int((~v.isfinite()).sum()) for v in out_fast.values()))
        if plain:
            try:
                with plain_mode():
                    t_plain, out_plain = run()
            except (RuntimeError, MemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                result["plain_error"] = "out of memory (e.g. math attention on long sequences)"
                plain = False
                continue
            slow.append(t_plain)
            ratios.append(t_plain / t_fast)
            diff = max(diff, stems_difference(out_fast, out_plain))
    result.update(
        rtf=statistics.median(fast) / seconds,
        rtf_min=min(fast) / seconds,
        times_s=[round(t, 3) for t in fast],
        nonfinite_samples=nonfinite,
    )
    if device.type == "cpu":
        # CPU seconds of all threads per audio second and thread: close to the RTF an idle
        # machine would give when other processes compete for the cores
        threads = torch.get_num_threads()
        result["rtf_cpu"] = statistics.median(cpu_times[False][-repeats:]) / seconds / threads
        if slow:
            result["rtf_cpu_plain"] = statistics.median(cpu_times[True]) / seconds / threads
    if slow:
        result.update(
            rtf_plain=statistics.median(slow) / seconds,
            times_plain_s=[round(t, 3) for t in slow],
            speedup=statistics.median(ratios),
            max_abs_diff=diff,
        )
    if device.type == "cuda":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / GIB
    return result


def stems_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest |a - b| over all stems.  A NaN or inf sample counts as equal only where the
    other stem has the same (NaN, +inf or -inf); otherwise the difference is infinite."""
    worst = 0.0
    for name, x in a.items():
        y = b[name]
        finite = x.isfinite() & y.isfinite()
        same_special = (x == y) | (x.isnan() & y.isnan())
        if not (finite | same_special).all():
            return math.inf
        if finite.any():
            worst = max(worst, (x[finite] - y[finite]).abs().max().item())
    return worst


def write_test_track(path: Path, seconds: float, fs: int, block_s: float = 30.0) -> None:
    """Write ``seconds`` of stereo noise to a float wav, block by block (little memory)."""
    with sf.SoundFile(path, "w", samplerate=fs, channels=2, subtype="FLOAT") as f:
        done, block = 0, 0
        total = round(seconds * fs)
        while done < total:
            n = min(round(block_s * fs), total - done)
            f.write(test_signal(n / fs, fs, seed=block).T.numpy())
            done += n
            block += 1


# --------------------------------------------------------------------------- fresh-process work
def is_out_of_memory(err: BaseException) -> bool:
    """An allocation failure: CUDA OOM, or the CPU allocator hitting the address-space cap."""
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "allocate" in str(err)


def _proc_kib(path: str, key: str) -> int | None:
    """A ``key: N kB`` entry of a /proc file, in KiB (None where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return None


def limit_memory(gib: float | None) -> float | None:
    """Cap this process's allocations at ``gib`` (and at 80% of the memory the system has
    available) above its current size, so running out raises an allocation error here
    instead of waking the system's OOM killer.  Returns the cap in GiB (None: no cap)."""
    size, available = (
        _proc_kib("/proc/self/status", "VmSize"),
        _proc_kib("/proc/meminfo", "MemAvailable"),
    )
    if not gib or size is None:
        return None
    if available is not None:
        gib = min(gib, 0.8 * available / 2**20)
    limit = size * 1024 + int(gib * GIB)
    # the soft limit only: worker processes inherit it and must be able to set their own
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return round(gib, 1)


def measure_memory(cfg: BenchConfig, audio: Path, device: str, precision: str) -> dict:
    """Peak memory of ``Separator.separate_file`` (what ``separate.py`` runs) on ``audio``."""
    dev = torch.device(device)
    sep = make_separator(cfg, device, precision)
    before = rss_bytes()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir, autocast(dev, precision):
        sep.separate_file(audio, out_dir)  # separate.py defaults: int16 wav, rescale
    result = {
        "seconds": sf.info(str(audio)).duration,
        "rss_before_gib": before / GIB,
        "peak_rss_gib": peak_rss_bytes() / GIB,
        "wall_s": time.perf_counter() - start,
    }
    if dev.type == "cuda":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated(dev) / GIB
    return result


def measure_training(
    cfg: BenchConfig,
    device: str,
    precision: str,
    steps: int,
    segment: int | None = None,
    batch_size: int | None = None,
) -> dict:
    """Steps per second of forward + backward + AdamW step on random stereo data.

    The loss is the L1 distance of the separated waveforms (STFT -> model -> iSTFT, as in
    ESPnet) to random targets.  The first step is a warm-up and not timed.
    """
    dev = torch.device(device)
    model = cfg.build(device).train()
    info = cfg.info(model)
    n_fft, hop = info["n_fft"], info["hop_length"]
    win, window = info["win_length"], info["window"]
    segment = segment or cfg.segment
    batch = batch_size or cfg.batch_size
    m, n = info["num_channels"], model.num_spk
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    mix = (0.1 * torch.randn(batch, m, segment, generator=g)).to(dev)
    target = (0.1 * torch.randn(batch, n, m, segment, generator=g)).to(dev)
    times = []
    for step in range(steps + 1):
        synchronize(dev)
        start = time.perf_counter()
        with autocast(dev, precision):
            est = model(stft(mix, n_fft, hop, win, window))
            if est.ndim == 4:  # [B, N, T, F]: mono model
                est = est.unsqueeze(2)
            wav = istft(est, n_fft, hop, win, window, length=segment)
            loss = (wav.float() - target).abs().mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        synchronize(dev)
        if step:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    result = {
        "segment_s": segment / cfg.fs,
        "segment_source": cfg.segment_source if segment == cfg.segment else "override",
        "batch_size": batch,
        "gradient_checkpointing": bool(getattr(model, "gradient_checkpointing", False)),
        "steps": steps,
        "step_s": step_s,
        "steps_per_s": 1 / step_s,
        "times_s": [round(t, 3) for t in times],
        "peak_rss_gib": peak_rss_bytes() / GIB,
        "loss_finite": bool(math.isfinite(loss.item())),
    }
    if dev.type == "cuda":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated(dev) / GIB
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="one benchmark measurement in a fresh process")
    p.add_argument("task", choices=("memory", "train"))
    p.add_argument("config", type=Path)
    p.add_argument("--audio", type=Path, help="memory: the track to separate")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int)
    p.add_argument("--steps", type=int, default=3, help="train: timed steps")
    p.add_argument("--segment", type=int, help="train: samples per example (config's)")
    p.add_argument("--batch-size", type=int, help="train: examples per step (config's)")
    p.add_argument("--max-memory-gib", type=float, help="allocation cap above the start size")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cap = limit_memory(args.max_memory_gib)
    cfg = BenchConfig(args.config)
    try:
        if args.task == "memory":
            result = measure_memory(cfg, args.audio, args.device, args.precision)
        else:
            result = measure_training(
                cfg, args.device, args.precision, args.steps, args.segment, args.batch_size
            )
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        result = {"error": f"out of memory (cap {cap} GiB)", "detail": str(err)[:300]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
