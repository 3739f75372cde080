"""Speed and memory benchmark of the shipped music separation configs.

    python tools/benchmark.py                          # every recipe config, full run
    python tools/benchmark.py --quick                  # short durations (CI smoke run)
    python tools/benchmark.py --configs conf.yaml --sections inference --repeats 5
    python tools/benchmark.py --device cuda            # bf16 autocast + flash attention

Sections (``--sections``, all by default):

* ``inference``: real-time factor (compute seconds per second of audio, median of
  ``--repeats`` runs) of every config on ``--seconds`` of stereo audio through
  ``standalone.api.Separator`` (the code path of ``separate.py``), and the same runs with
  ``standalone.perf.plain_mode()`` in between: ``speedup`` = plain time / fast time, median of
  the pairs, and the largest difference between the two forms' stems.
* ``memory``: peak resident memory of ``Separator.separate_file`` on tracks of ``--minutes``,
  each in a fresh process (the default config, or the first one given).
* ``train``: steps per second and peak memory of forward + backward + AdamW at the config's
  training segment and batch size, in a fresh process (the default and ``*small*`` configs,
  or every config given).

The table goes to stdout, the JSON (machine, per-config results, goals) to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tasks import (  # noqa: E402
    REPO_ROOT,
    BenchConfig,
    is_out_of_memory,
    limit_memory,
    machine_info,
    make_separator,
    time_separation,
    write_test_track,
)

CONF_DIR = REPO_ROOT / "egs2" / "musdb18hq" / "enh1" / "conf" / "tuning"
DEFAULT_CONFIG = "train_enh_bslocoformer"
DEFAULT_OUT = REPO_ROOT / "bench_results" / "results.json"
SECTIONS = ("inference", "memory", "train")
# goals on 2 CPU cores in fp32 (issue 6)
GOAL_RTF = 0.8
GOAL_PEAK_GIB = 3.0
GOAL_PEAK_RATIO = 1.3
GOAL_MAX_DIFF = 1e-4
# full and --quick settings; options given on the command line override them
FULL = {"seconds": 30.0, "minutes": [1.0, 5.0, 10.0], "repeats": 3, "train_steps": 3}
QUICK = {"seconds": 2.0, "minutes": [0.05, 0.1, 0.2], "repeats": 1, "train_steps": 1}
QUICK_TRAIN_SEGMENT_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Speed and memory benchmark of the separation configs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--configs",
        nargs="+",
        type=Path,
        help=f"recipe configs (default: {CONF_DIR.relative_to(REPO_ROOT)}/*.yaml)",
    )
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--quick", action="store_true", help="short durations (CI smoke run)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="bf16 autocast or fp32 (default: bf16 on CUDA, fp32 on CPU)",
    )
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seconds", type=float, help="inference audio length (30; quick 2)")
    p.add_argument(
        "--minutes", type=float, nargs="+", help="memory track lengths (1 5 10; quick 0.05 0.1 0.2)"
    )
    p.add_argument("--repeats", type=int, help="timed runs per form (3; quick 1)")
    p.add_argument("--train-steps", type=int, help="timed training steps (3; quick 1)")
    p.add_argument(
        "--train-batch-size", type=int, help="examples per training step (config's; quick 1)"
    )
    p.add_argument("--no-plain", action="store_true", help="skip the plain-form runs")
    p.add_argument("--compile", action="store_true", help="inference with torch.compile")
    p.add_argument(
        "--max-memory-gib",
        type=float,
        default=16.0,
        help="allocation cap of each worker process (it reports out of memory beyond)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    return p


def select_configs(paths: list[Path] | None) -> list[BenchConfig]:
    if paths is None:
        paths = sorted(CONF_DIR.glob("*.yaml"))
        if not paths:
            raise SystemExit(f"error: no configs in {CONF_DIR} (give --configs)")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"error: config not found: {', '.join(missing)}")
    return [BenchConfig(p) for p in paths]


def default_first(configs: list[BenchConfig]) -> list[BenchConfig]:
    """The default config first (if present), the others in their order."""
    return sorted(configs, key=lambda c: c.name != DEFAULT_CONFIG)


def run_worker(args: list[str], threads: int | None) -> dict:
    """Run ``bench_tasks.py`` in a fresh process; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).with_name("bench_tasks.py")), *args]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:]) or f"exit status {proc.returncode}"
        return {"error": f"worker failed: {tail}"}
    return json.loads(lines[-1])


def inference_section(configs, opts, device, precision, log) -> list[dict]:
    results = []
    for cfg in configs:
        log(f"inference: {cfg.name}")
        sep = make_separator(cfg, device, precision)
        entry = cfg.summary(sep.model)
        try:
            entry.update(
                time_separation(
                    sep,
                    opts["seconds"],
                    opts["repeats"],
                    precision=precision,
                    plain=not opts["no_plain"],
                    compile_model=opts["compile"],
                )
            )
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            entry["error"] = f"out of memory (cap {opts['memory_cap_gib']} GiB)"
        results.append(entry)
        del sep
        gc.collect()
    return results


def memory_section(cfg: BenchConfig, opts, device, precision, log) -> dict:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_tracks_") as tmp:
        for minutes in opts["minutes"]:
            track = Path(tmp) / f"track_{minutes:g}min.wav"
            write_test_track(track, minutes * 60, cfg.fs)
            log(f"memory: {cfg.name}, {minutes:g} min")
            result = run_worker(
                [
                    "memory",
                    str(cfg.path),
                    "--audio",
                    str(track),
                    "--device",
                    device,
                    "--precision",
                    precision,
                    "--max-memory-gib",
                    str(opts["max_memory_gib"]),
                ],
                opts["threads"],
            )
            runs.append({"minutes": minutes, **result})
            track.unlink()
    out = {"config": cfg.name, "runs": runs}
    peaks = [r.get("peak_rss_gib") for r in runs]
    if len(peaks) > 1 and all(peaks):
        out["ratio_longest_to_shortest"] = peaks[-1] / peaks[0]
    return out


def train_section(configs, opts, device, precision, log) -> list[dict]:
    results = []
    for cfg in configs:
        log(f"train: {cfg.name}")
        args = ["train", str(cfg.path), "--device", device, "--precision", precision]
        args += ["--steps", str(opts["train_steps"])]
        args += ["--max-memory-gib", str(opts["max_memory_gib"])]
        batch = opts["train_batch_size"] or (1 if opts["quick"] else None)
        if batch:
            args += ["--batch-size", str(batch)]
        if opts["quick"]:
            args += ["--segment", str(min(cfg.segment, round(QUICK_TRAIN_SEGMENT_S * cfg.fs)))]
        results.append({"config": cfg.name, **run_worker(args, opts["threads"])})
    return results


def check_goals(report: dict) -> dict:
    """Each issue-6 goal with the measured value and whether it is met (None: not measured)."""
    goals = {}
    inference = {r["config"]: r for r in report.get("inference", [])}
    default = inference.get(DEFAULT_CONFIG)
    rtf = default.get("rtf") if default else None
    goals["default_rtf"] = {
        "goal": f"<= {GOAL_RTF}",
        "value": rtf,
        "met": rtf <= GOAL_RTF if rtf is not None else None,
    }
    diffs = [r["max_abs_diff"] for r in inference.values() if "max_abs_diff" in r]
    goals["fast_equals_plain"] = {
        "goal": f"max |fast - plain| <= {GOAL_MAX_DIFF}",
        "value": max(diffs) if diffs else None,
        "met": max(diffs) <= GOAL_MAX_DIFF if diffs else None,
    }
    bad = [r["nonfinite_samples"] for r in inference.values() if "nonfinite_samples" in r]
    goals["stems_finite"] = {
        "goal": "no NaN/inf output samples",
        "value": sum(bad) if bad else None,
        "met": sum(bad) == 0 if bad else None,
    }
    memory = report.get("memory")
    peaks = [r.get("peak_rss_gib") for r in memory["runs"]] if memory else []
    longest = peaks[-1] if peaks and all(peaks) else None
    goals["longest_track_peak_gib"] = {
        "goal": f"<= {GOAL_PEAK_GIB}",
        "value": longest,
        "met": longest <= GOAL_PEAK_GIB if longest else None,
    }
    ratio = memory.get("ratio_longest_to_shortest") if memory else None
    goals["longest_to_shortest_peak"] = {
        "goal": f"<= {GOAL_PEAK_RATIO}",
        "value": ratio,
        "met": ratio <= GOAL_PEAK_RATIO if ratio else None,
    }
    return goals


def _fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_report(report: dict) -> str:
    """The human-readable tables (markdown, so they paste into docs/benchmark.md)."""
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['torch_threads']} torch "
        f"threads, {m['memory_gib']} GiB, torch {m['torch']}, device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + f", load average at start {m['load_average'][0]}",
        f"settings: precision {report['precision']}, quick={report['quick']}",
        "",
    ]
    if report.get("inference"):
        r0 = report["inference"][0]
        lines += [
            f"Inference, {r0['seconds']:g} s of stereo audio (RTF = compute s / audio s, "
            f"median of {r0['repeats']}; CPU-s RTF = CPU seconds / audio s / threads, an "
            "estimate for an idle machine)",
            "",
            "| config | params (M) | layers | emb | ffn | att | RTF | RTF plain | speedup "
            "| max diff | CPU-s RTF |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["inference"]:
            ffn = r["ffn_hidden_dim"]
            ffn = ffn[0] if isinstance(ffn, list) else ffn
            speed = (
                f"{_fmt(r.get('rtf'))} | {_fmt(r.get('rtf_plain'))} | {_fmt(r.get('speedup'))}x | "
                f"{_fmt(r.get('max_abs_diff'), '.1e')} | {_fmt(r.get('rtf_cpu'))}"
                if "error" not in r
                else f"{r['error']} | | | |"
            )
            lines.append(
                f"| {r['config']} | {r['params_m']:.1f} | {r['n_layers']} | {r['emb_dim']} | "
                f"{ffn} | {r['attention_dim']} | {speed} |"
            )
        lines.append("")
        for r in report["inference"]:
            if "compile_s" in r:
                lines.append(
                    f"{r['config']}: torch.compile's first call took {r['compile_s']:.0f} s more"
                )
            if "plain_error" in r:
                lines.append(f"{r['config']}: plain form not measured: {r['plain_error']}")
            if r.get("nonfinite_samples"):
                lines.append(
                    f"WARNING: {r['config']}: {r['nonfinite_samples']} NaN/inf samples in the stems"
                )
    memory = report.get("memory")
    if memory:
        lines += [
            f"Peak memory of separate_file ({memory['config']}), fresh process each",
            "",
            "| track (min) | peak RSS (GiB) | RSS before (GiB) | wall (s) |"
            + (" GPU peak (GiB) |" if "gpu" in m else ""),
            "|---|---|---|---|" + ("---|" if "gpu" in m else ""),
        ]
        for r in memory["runs"]:
            if "error" in r:
                lines.append(f"| {r['minutes']:g} | {r['error']} | | |")
                continue
            lines.append(
                f"| {r['minutes']:g} | {r['peak_rss_gib']:.2f} | {r['rss_before_gib']:.2f} | "
                f"{r['wall_s']:.0f} |" + (f" {r['gpu_peak_gib']:.2f} |" if "gpu" in m else "")
            )
        lines += [
            "",
            f"longest / shortest peak: {_fmt(memory.get('ratio_longest_to_shortest'))}",
            "",
        ]
    if report.get("train"):
        lines += [
            "Training (forward + backward + AdamW, random data)",
            "",
            "| config | segment (s) | batch | grad ckpt | steps/s | s/step | peak RSS (GiB) |"
            + (" GPU peak (GiB) |" if "gpu" in m else ""),
            "|---|---|---|---|---|---|---|" + ("---|" if "gpu" in m else ""),
        ]
        for r in report["train"]:
            if "error" in r:
                lines.append(f"| {r['config']} | {r['error']} | | | | | |")
                continue
            lines.append(
                f"| {r['config']} | {r['segment_s']:.1f} | {r['batch_size']} | "
                f"{'yes' if r['gradient_checkpointing'] else 'no'} | {r['steps_per_s']:.3f} | "
                f"{r['step_s']:.1f} | {r['peak_rss_gib']:.2f} |"
                + (f" {r['gpu_peak_gib']:.2f} |" if "gpu" in m else "")
            )
        lines.append("")
    lines.append("Goals (2 CPU cores, fp32):")
    for name, g in report["goals"].items():
        state = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        value = g["value"] if not isinstance(g["value"], float) else f"{g['value']:.3g}"
        lines.append(f"  {name}: {value} (goal {g['goal']}): {state}")
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"device {args.device}: CUDA is not available")
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    if args.threads:
        torch.set_num_threads(args.threads)
    base = QUICK if args.quick else FULL
    opts = {
        "seconds": args.seconds or base["seconds"],
        "minutes": args.minutes or base["minutes"],
        "repeats": args.repeats or base["repeats"],
        "train_steps": args.train_steps or base["train_steps"],
        "train_batch_size": args.train_batch_size,
        "no_plain": args.no_plain,
        "compile": args.compile,
        "threads": args.threads,
        "quick": args.quick,
        "max_memory_gib": args.max_memory_gib,
    }
    configs = default_first(select_configs(args.configs))
    # an allocation beyond the cap fails (reported) instead of waking the OOM killer
    opts["memory_cap_gib"] = limit_memory(args.max_memory_gib)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    report = {
        "machine": machine_info(args.device),
        "precision": precision,
        "quick": args.quick,
        "settings": {k: v for k, v in opts.items() if k != "quick"},
    }
    start = time.time()
    if "inference" in args.sections:
        report["inference"] = inference_section(configs, opts, args.device, precision, log)
    if "memory" in args.sections:
        report["memory"] = memory_section(configs[0], opts, args.device, precision, log)
    if "train" in args.sections:
        chosen = [c for c in configs if c.name == DEFAULT_CONFIG or "small" in c.name]
        if args.configs is not None or not chosen:
            chosen = configs
        report["train"] = train_section(chosen, opts, args.device, precision, log)
    report["goals"] = check_goals(report)
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_s"] = round(time.time() - start, 1)
    print(format_report(report))
    write_json(args.out, report)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
