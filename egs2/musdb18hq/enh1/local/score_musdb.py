#!/usr/bin/env python3
"""Score separated MUSDB18(-HQ) stems: cSDR (museval BSSEval v4), uSDR and SI-SDR.

Inputs:
    --ref-dir DIR       data dir with wav.scp (mixture) and spk1.scp..spk4.scp (stems in the
                        order of local/stems.py); every utterance in wav.scp is scored.
    --est-scp-dir DIR   spk1.scp..spk4.scp mapping uttid -> estimated stem wav (what ESPnet's
                        enhancement inference writes), or
    --est-dir DIR       estimates as DIR/{uttid}/{stem}.wav.
Outputs (each replaced atomically when scoring is re-run):
    {out}/tracks/{uttid}.json   per-track values (and museval's per-frame values)
    {out}/results.json          aggregated values per stem and their mean over stems
    {out}/RESULTS.md            the same as markdown tables, with the stem order
JSON holds null where a value is NaN (e.g. museval's silent frames) or infinite (the SDR of a
perfect estimate).

Metrics, per stem; "mixture" rows use the mixture as the estimate of every stem, and
"improvement" is model minus mixture (of the aggregated values):
    cSDR    museval.evaluate (BSSEval v4, --win/--hop seconds, 1 s by default): median over
            the frames of a track (frames museval leaves NaN, e.g. silent references, are
            skipped), then median over tracks. SIR, ISR and SAR are aggregated the same way.
    uSDR    10 log10((eps + sum s^2) / (eps + sum (s - s_hat)^2)) over all samples and
            channels, eps = 1e-7 (the MDX challenge's global SDR); mean over tracks.
    SI-SDR  on the stereo signal flattened to one vector (one scale factor for both
            channels): a = <s_hat, s> / (<s, s> + eps), 10 log10((eps + |a s|^2) /
            (eps + |s_hat - a s|^2)); mean over tracks.
The per-stem "mean" is the average of the four aggregated stem values.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
from stems import STEMS, spk_name
from textio import write_text_atomic

EPS = 1e-7
BSS_METRICS = ("SDR", "ISR", "SIR", "SAR")  # the order museval.evaluate returns them in
SYSTEMS = ("model", "mixture")


class ScoreError(Exception):
    """A problem with the inputs; printed as one line without a traceback."""


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def usdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Global SDR (dB) of ``est`` against ``ref``, both ``[L, C]``, over all samples/channels."""
    num = EPS + np.sum(ref**2)
    den = EPS + np.sum((ref - est) ** 2)
    return float(10.0 * np.log10(num / den))


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est`` vs ``ref`` (both [L, C]), one scale for all channels."""
    r, e = ref.reshape(-1), est.reshape(-1)
    scale = np.dot(e, r) / (np.dot(r, r) + EPS)
    target = scale * r
    return float(
        10.0 * np.log10((EPS + np.dot(target, target)) / (EPS + np.sum((e - target) ** 2)))
    )


def bss_eval_v4(
    refs: np.ndarray, ests: np.ndarray, sample_rate: int, win_s: float, hop_s: float
) -> dict[str, np.ndarray]:
    """museval BSSEval v4 on ``refs``/``ests`` ``[S, L, C]``; returns metric -> ``[S, frames]``."""
    import museval

    values = museval.evaluate(
        refs, ests, win=int(win_s * sample_rate), hop=int(hop_s * sample_rate), mode="v4"
    )
    return dict(zip(BSS_METRICS, values))


def nan_median(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as intended
        return np.nanmedian(values, axis=axis)


def nan_mean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def read_scp(path: Path) -> dict[str, str]:
    """Kaldi-style 2-column file -> dict, split at the first whitespace (as ESPnet does)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ScoreError(f"{path}: cannot read ({err.strerror})") from None
    out: dict[str, str] = {}
    for num, line in enumerate(lines, 1):
        parts = line.rstrip().split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2:
            raise ScoreError(f"{path}:{num}: expected '<uttid> <path>', got '{line}'")
        if parts[0] in out:
            raise ScoreError(f"{path}:{num}: duplicated uttid '{parts[0]}'")
        out[parts[0]] = parts[1]
    return out


def collect_jobs(ref_dir: Path, est_scp_dir: Path | None, est_dir: Path | None) -> list[dict]:
    """One job per utterance of ``ref_dir/wav.scp``: mixture, reference and estimate paths."""
    stems_file = ref_dir / "stems"
    if stems_file.is_file():
        listed = stems_file.read_text(encoding="utf-8").split()
        if tuple(listed) != STEMS:
            raise ScoreError(
                f"{stems_file}: stem order {listed} differs from local/stems.py {list(STEMS)}"
            )
    mixtures = read_scp(ref_dir / "wav.scp")
    if not mixtures:
        raise ScoreError(f"{ref_dir / 'wav.scp'}: no utterances")
    refs = {stem: read_scp(ref_dir / f"{spk_name(i)}.scp") for i, stem in enumerate(STEMS)}
    if est_scp_dir is not None:
        ests = {stem: read_scp(est_scp_dir / f"{spk_name(i)}.scp") for i, stem in enumerate(STEMS)}
    jobs = []
    for uttid, mix in mixtures.items():
        job = {"uttid": uttid, "mixture": mix, "refs": {}, "ests": {}}
        for i, stem in enumerate(STEMS):
            if uttid not in refs[stem]:
                raise ScoreError(f"{ref_dir / f'{spk_name(i)}.scp'}: no entry for '{uttid}'")
            job["refs"][stem] = refs[stem][uttid]
            if est_scp_dir is not None:
                if uttid not in ests[stem]:
                    raise ScoreError(
                        f"{est_scp_dir / f'{spk_name(i)}.scp'}: no entry for '{uttid}'"
                    )
                job["ests"][stem] = ests[stem][uttid]
            else:
                job["ests"][stem] = str(est_dir / uttid / f"{stem}.wav")
        jobs.append(job)
    return jobs


def load(path: str) -> tuple[np.ndarray, int]:
    """Read ``path`` as float64 ``[L, C]``."""
    try:
        audio, rate = sf.read(path, dtype="float64", always_2d=True)
    except (OSError, sf.LibsndfileError) as err:
        raise ScoreError(f"{path}: cannot read audio ({err})") from None
    return audio, rate


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def score_track(job: dict, csdr: bool, win_s: float, hop_s: float) -> dict:
    """Score one utterance; returns the per-track dict (values may be NaN or +-inf)."""
    uttid = job["uttid"]
    mix, rate = load(job["mixture"])
    refs, ests = [], []
    for stem in STEMS:
        for kind, store in (("refs", refs), ("ests", ests)):
            audio, audio_rate = load(job[kind][stem])
            what = "reference" if kind == "refs" else "estimate"
            if audio.shape != mix.shape or audio_rate != rate:
                raise ScoreError(
                    f"{job[kind][stem]}: {what} '{stem}' of '{uttid}' has (samples, channels) "
                    f"= {audio.shape} at {audio_rate} Hz but the mixture has {mix.shape} at "
                    f"{rate} Hz"
                )
            store.append(audio)
    ref_arr, est_arr = np.stack(refs), np.stack(ests)  # [S, L, C]
    mix_arr = np.broadcast_to(mix, ref_arr.shape)
    track = {
        "uttid": uttid,
        "num_samples": int(mix.shape[0]),
        "sample_rate": int(rate),
        "stems": {},
    }
    bss = {}
    if csdr:
        bss["model"] = bss_eval_v4(ref_arr, est_arr, rate, win_s, hop_s)
        bss["mixture"] = bss_eval_v4(ref_arr, np.array(mix_arr), rate, win_s, hop_s)
    for j, stem in enumerate(STEMS):
        entry = {}
        for system, est in (("model", est_arr[j]), ("mixture", mix_arr[j])):
            values = {"uSDR": usdr(ref_arr[j], est), "SI-SDR": si_sdr(ref_arr[j], est)}
            if csdr:
                for metric in BSS_METRICS:
                    values["c" + metric if metric == "SDR" else metric] = float(
                        nan_median(bss[system][metric][j])
                    )
            entry[system] = values
        if csdr:
            entry["frames"] = {m: [float(v) for v in bss["model"][m][j]] for m in BSS_METRICS}
        track["stems"][stem] = entry
    return track


def _score_job(args: tuple) -> dict:
    return score_track(*args)


def metric_names(csdr: bool) -> list[str]:
    return (["cSDR"] if csdr else []) + ["uSDR", "SI-SDR"] + (["SIR", "ISR", "SAR"] if csdr else [])


def aggregate(tracks: list[dict], csdr: bool) -> dict:
    """Aggregate per-track values: BSSEval metrics by median, uSDR/SI-SDR by mean over tracks."""
    summary: dict = {"per_stem": {}, "mean_over_stems": {}}
    for stem in STEMS:
        per_system = {}
        for system in SYSTEMS:
            values = {}
            for metric in metric_names(csdr):
                col = np.array([t["stems"][stem][system][metric] for t in tracks])
                if metric in ("uSDR", "SI-SDR"):
                    values[metric] = nan_mean(col)
                else:
                    values[metric] = float(nan_median(col))
            per_system[system] = values
        per_system["improvement"] = {
            m: per_system["model"][m] - per_system["mixture"][m] for m in metric_names(csdr)
        }
        summary["per_stem"][stem] = per_system
    for system in (*SYSTEMS, "improvement"):
        summary["mean_over_stems"][system] = {
            m: float(np.mean([summary["per_stem"][s][system][m] for s in STEMS]))
            for m in metric_names(csdr)
        }
    return summary


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def to_json(data) -> str:
    """JSON text; NaN (undefined) and +-inf (e.g. SDR of a perfect estimate) become null."""

    def clean(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(data), indent=2, allow_nan=False) + "\n"


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "nan"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def results_markdown(
    summary: dict,
    name: str,
    ref_dir: Path,
    est_source: str,
    num_tracks: int,
    csdr: bool,
    win_s: float,
    hop_s: float,
) -> str:
    metrics = ["cSDR", "uSDR", "SI-SDR"] if csdr else ["uSDR", "SI-SDR"]
    date = datetime.datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Z %Y")
    lines = [
        "<!-- Generated by local/score_musdb.py -->",
        "# RESULTS",
        "## Environments",
        f"- date: `{date}`",
        f"- python version: `{platform.python_version()}`",
        f"- espnet version: `{_version('espnet')}`",
        f"- pytorch version: `{_version('torch')}`",
        f"- museval version: `{_version('museval')}`",
        "",
        f"## {name}",
        f"- reference: `{ref_dir}` ({num_tracks} tracks)",
        f"- estimates: `{est_source}`",
        "- stem order: " + ", ".join(f"{spk_name(i)}={s}" for i, s in enumerate(STEMS)),
        "- values in dB; *mix* = the mixture used as every stem's estimate; *imp* = model - mix",
    ]
    if csdr:
        lines.append(
            f"- cSDR: museval BSSEval v4, {win_s:g} s windows, hop {hop_s:g} s; median "
            "over frames per track, median over tracks"
        )
    else:
        lines.append("- cSDR: not computed (--no-csdr)")
    lines += [
        f"- uSDR: global SDR over all samples and channels (eps {EPS:g}); mean over tracks",
        "- SI-SDR: stereo flattened to one signal (one scale for both channels); mean over tracks",
        "",
    ]
    header = ["stem"] + metrics + [f"{m} mix" for m in metrics] + [f"{m} imp" for m in metrics]
    lines += ["|" + "|".join(header) + "|", "|" + "|".join(["---"] * len(header)) + "|"]
    rows = [(f"{s} ({spk_name(i)})", summary["per_stem"][s]) for i, s in enumerate(STEMS)]
    rows.append(("mean", summary["mean_over_stems"]))
    for label, values in rows:
        cells = [_fmt(values[system][m]) for system in (*SYSTEMS, "improvement") for m in metrics]
        lines.append("|" + "|".join([label, *cells]) + "|")
    if csdr:
        lines += [
            "",
            f"### {name}: BSSEval v4 (median over frames, median over tracks)",
            "",
            "|stem|SDR|SIR|ISR|SAR|",
            "|---|---|---|---|---|",
        ]
        for label, values in rows:
            model = values["model"]
            lines.append(
                "|"
                + "|".join([label] + [_fmt(model[m]) for m in ("cSDR", "SIR", "ISR", "SAR")])
                + "|"
            )
    return "\n".join(lines) + "\n"


def replace_tracks_dir(out_dir: Path, tracks: list[dict]) -> None:
    """Write ``out_dir/tracks/*.json`` into a fresh folder and swap it in."""
    tmp = Path(tempfile.mkdtemp(prefix=".tracks-", dir=out_dir))
    try:
        (tmp / "new").mkdir()
        for track in tracks:
            (tmp / "new" / f"{track['uttid']}.json").write_text(to_json(track), encoding="utf-8")
        target = out_dir / "tracks"
        if target.exists():
            os.replace(target, tmp / "old")
        os.replace(tmp / "new", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def score(
    ref_dir: Path,
    out_dir: Path,
    est_scp_dir: Path | None = None,
    est_dir: Path | None = None,
    csdr: bool = True,
    nj: int = 1,
    win_s: float = 1.0,
    hop_s: float = 1.0,
    name: str | None = None,
) -> dict:
    """Score all utterances and write the outputs; returns the aggregated summary."""
    if (est_scp_dir is None) == (est_dir is None):
        raise ScoreError("give exactly one of --est-scp-dir and --est-dir")
    for folder, what in ((ref_dir, "--ref-dir"), (est_scp_dir or est_dir, "estimates")):
        if not Path(folder).is_dir():
            raise ScoreError(f"{folder}: {what} folder not found")
    jobs = collect_jobs(Path(ref_dir), est_scp_dir and Path(est_scp_dir), est_dir and Path(est_dir))
    args = [(job, csdr, win_s, hop_s) for job in jobs]
    if nj > 1:
        with Pool(min(nj, len(jobs))) as pool:
            tracks = pool.map(_score_job, args, chunksize=1)
    else:
        tracks = [_score_job(a) for a in args]
    summary = aggregate(tracks, csdr)
    est_source = str(est_scp_dir if est_scp_dir is not None else est_dir)
    name = name or Path(est_source).resolve().name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_tracks_dir(out_dir, tracks)
    results = {
        "name": name,
        "reference": str(ref_dir),
        "estimates": est_source,
        "stems": {spk_name(i): s for i, s in enumerate(STEMS)},
        "num_tracks": len(tracks),
        "settings": {
            "csdr": csdr,
            "win_s": win_s,
            "hop_s": hop_s,
            "eps": EPS,
            "si_sdr": "stereo flattened, one scale",
            "csdr_agg": "median/median",
            "usdr_agg": "mean over tracks",
        },
        **summary,
    }
    write_text_atomic(out_dir / "results.json", to_json(results))
    write_text_atomic(
        out_dir / "RESULTS.md",
        results_markdown(summary, name, Path(ref_dir), est_source, len(tracks), csdr, win_s, hop_s),
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ref-dir",
        "--ref_dir",
        required=True,
        type=Path,
        help="data dir with wav.scp and spk1.scp..spk4.scp",
    )
    est = parser.add_mutually_exclusive_group(required=True)
    est.add_argument(
        "--est-scp-dir",
        "--est_scp_dir",
        type=Path,
        help="folder with spk1.scp..spk4.scp of the estimates",
    )
    est.add_argument(
        "--est-dir", "--est_dir", type=Path, help="folder with {uttid}/{stem}.wav estimates"
    )
    parser.add_argument("--out-dir", "--out_dir", required=True, type=Path)
    parser.add_argument(
        "--no-csdr",
        "--no_csdr",
        action="store_true",
        help="skip museval (cSDR, SIR, ISR, SAR): quick check",
    )
    parser.add_argument("--nj", type=int, default=1, help="tracks scored in parallel")
    parser.add_argument("--win", type=float, default=1.0, help="BSSEval window, seconds")
    parser.add_argument("--hop", type=float, default=1.0, help="BSSEval hop, seconds")
    parser.add_argument(
        "--name", default=None, help="section title in RESULTS.md (default: estimates folder name)"
    )
    args = parser.parse_args(argv)
    try:
        summary = score(
            args.ref_dir,
            args.out_dir,
            args.est_scp_dir,
            args.est_dir,
            not args.no_csdr,
            args.nj,
            args.win,
            args.hop,
            args.name,
        )
    except ScoreError as err:
        print(f"score_musdb.py: error: {err}", file=sys.stderr)
        return 1
    mean = summary["mean_over_stems"]
    key = "uSDR" if args.no_csdr else "cSDR"
    print(
        f"Wrote {args.out_dir}/RESULTS.md: mean {key} {_fmt(mean['model'][key])} dB "
        f"(mixture {_fmt(mean['mixture'][key])} dB, improvement "
        f"{_fmt(mean['improvement'][key])} dB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
