"""The MUSDB18-HQ recipe's own helpers: option parsing, scp splitting, the job runner, stage 3-4
formatting/filtering, stage 7 separation of a data dir, stage 8 result collection, the nltk
stand-in and the model statistics script."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import REPO_ROOT

RECIPE = REPO_ROOT / "egs2" / "musdb18hq" / "enh1"
UTILS = RECIPE / "utils"
LOCAL = RECIPE / "local"
STEMS = ("vocals", "drums", "bass", "other")


def load(path: Path):
    """Import a recipe script as a module (local/ scripts import their siblings)."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(cmd: list[str], cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)


# ------------------------------------------------------------------------------ parse_options.sh
def parse(args: list[str], defaults: str = "nj=4; use_gpu=false; enh_config=a.yaml") -> tuple:
    """Source parse_options.sh in bash with ``defaults``; return (rc, stdout, stderr)."""
    script = (
        f"{defaults}; help_message='Usage: demo [options]'\n"
        f". {UTILS / 'parse_options.sh'}\n"
        'echo "nj=$nj use_gpu=$use_gpu enh_config=$enh_config rest=$*"'
    )
    proc = run(["bash", "-c", script, "demo", *args])
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def test_parse_options_sets_known_variables_and_keeps_positionals():
    rc, out, _ = parse(["--nj", "8", "--use-gpu=true", "--enh_config", "my conf.yaml", "x", "--nj"])
    assert rc == 0
    assert out == "nj=8 use_gpu=true enh_config=my conf.yaml rest=x --nj"


def test_parse_options_double_dash_ends_options():
    rc, out, _ = parse(["--nj", "2", "--", "--not-an-option"])
    assert (rc, out) == (0, "nj=2 use_gpu=false enh_config=a.yaml rest=--not-an-option")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--njobs", "3"], "unknown option --njobs"),
        (["--use_gpu", "yes"], "option --use_gpu takes true or false, got 'yes'"),
        (["--nj"], "option --nj needs a value"),
    ],
)
def test_parse_options_errors(args, message):
    rc, out, err = parse(args)
    assert rc == 2
    assert message in err
    assert out == ""


def test_parse_options_help_prints_help_message():
    rc, out, _ = parse(["--help"])
    assert (rc, out) == (0, "Usage: demo [options]")


# ---------------------------------------------------------------------------------- split_scp.py
def test_split_lines_is_contiguous_and_balanced():
    split_scp = load(UTILS / "split_scp.py")
    lines = [f"utt{i} path{i}" for i in range(10)]
    parts = split_scp.split_lines(lines, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sum(parts, []) == lines
    with pytest.raises(ValueError, match="cannot split 2 lines into 3"):
        split_scp.split_lines(lines[:2], 3)


def test_split_scp_cli_writes_parts(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"u{i} /data/Track {i}/mixture.wav\n" for i in range(5)))
    proc = run(
        [
            sys.executable,
            str(UTILS / "split_scp.py"),
            str(scp),
            str(tmp_path / "split" / "keys.JOB.scp"),
            "--num-parts",
            "2",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    first = (tmp_path / "split" / "keys.1.scp").read_text().splitlines()
    second = (tmp_path / "split" / "keys.2.scp").read_text().splitlines()
    assert first + second == scp.read_text().splitlines()
    assert len(first) == 3 and second[0] == "u3 /data/Track 3/mixture.wav"


def test_split_scp_cli_errors_leave_no_files(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text("u1 a.wav\n")
    proc = run(
        [
            sys.executable,
            str(UTILS / "split_scp.py"),
            str(scp),
            str(tmp_path / "keys.JOB.scp"),
            "--num-parts",
            "2",
        ]
    )
    assert proc.returncode == 1
    assert "cannot split 1 lines into 2" in proc.stderr and str(scp) in proc.stderr
    assert not list(tmp_path.glob("keys.*"))
    proc = run(
        [
            sys.executable,
            str(UTILS / "split_scp.py"),
            str(scp),
            str(tmp_path / "keys.scp"),
            "--num-parts",
            "1",
        ]
    )
    assert proc.returncode == 2 and "must contain JOB" in proc.stderr


# ----------------------------------------------------------------------------------- run_jobs.py
def run_jobs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(UTILS / "run_jobs.py"), *args], cwd=cwd)


def test_run_jobs_array_substitutes_job_and_logs_each(tmp_path):
    proc = run_jobs(
        "--gpu",
        "0",
        "JOB=1:3",
        "log/out.JOB.log",
        "bash",
        "-c",
        "echo job JOB > result.JOB.txt; echo said JOB",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for n in (1, 2, 3):
        assert (tmp_path / f"result.{n}.txt").read_text() == f"job {n}\n"
        log = (tmp_path / "log" / f"out.{n}.log").read_text().splitlines()
        assert log[0] == f"# bash -c 'echo job {n} > result.{n}.txt; echo said {n}'"
        assert f"said {n}" in log
        assert log[-1].startswith("# Ended (code 0)")


def test_run_jobs_failure_names_the_log(tmp_path):
    proc = run_jobs(
        "JOB=1:3", "log/x.JOB.log", "bash", "-c", "echo failing >&2; [ JOB != 2 ]", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "run_jobs.py: 1 / 3 failed, log is in log/x.2.log"
    log = (tmp_path / "log" / "x.2.log").read_text()
    assert "failing" in log and "# Ended (code 1)" in log
    assert "# Ended (code 0)" in (tmp_path / "log" / "x.1.log").read_text()


def test_run_jobs_single_job_and_missing_program(tmp_path):
    proc = run_jobs("one.log", sys.executable, "-c", "print('a b')", cwd=tmp_path)
    assert proc.returncode == 0
    assert "a b" in (tmp_path / "one.log").read_text()
    proc = run_jobs("missing.log", "no-such-program-xyz", cwd=tmp_path)
    assert proc.returncode == 1
    assert "log is in missing.log" in proc.stderr
    assert "cannot start no-such-program-xyz" in (tmp_path / "missing.log").read_text()


def test_run_jobs_limits_parallel_jobs(tmp_path):
    # each job appends "start"/"end" to one file; with one job at a time they never interleave
    cmd = "echo start >> trace; sleep 0.2; echo end >> trace"
    proc = run_jobs("--max_jobs_run", "1", "JOB=1:3", "l.JOB.log", "bash", "-c", cmd, cwd=tmp_path)
    assert proc.returncode == 0
    assert (tmp_path / "trace").read_text().split() == ["start", "end"] * 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["JOB=1-3", "l.log", "true"], "bad job range 'JOB=1-3'"),
        (["JOB=3:1", "l.JOB.log", "true"], "empty job range JOB=3:1"),
        (["JOB=1:2", "l.log", "true"], "must contain JOB"),
        (["l.log"], "expected a log file and a command"),
    ],
)
def test_run_jobs_usage_errors(tmp_path, args, message):
    proc = run_jobs(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr


# -------------------------------------------------------------------------------- format_data.py
def make_track(folder: Path, seconds: float, rate: int, channels: int = 2, seed: int = 0):
    """Write mixture + 4 stems (mixture = sum of stems) as PCM_16 wav; returns the stems."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    stems = []
    for k in range(4):
        tone = 0.1 * np.sin(2 * np.pi * (110 * (k + 1)) * t)[:, None]
        stems.append((tone + 0.01 * rng.standard_normal((n, channels))).astype(np.float32))
    folder.mkdir(parents=True)
    for name, audio in zip(STEMS, stems):
        sf.write(folder / f"{name}.wav", audio, rate, subtype="PCM_16")
    sf.write(folder / "mixture.wav", sum(stems), rate, subtype="PCM_16")
    return stems


def make_data_dir(root: Path, tracks: dict[str, float], rate: int = 44100) -> Path:
    """A data dir as local/prepare_musdb.py writes it, over tracks with spaces in their names."""
    data = root / "data" / "train"
    data.mkdir(parents=True)
    rows = {"wav.scp": [], **{f"spk{i + 1}.scp": [] for i in range(4)}}
    for i, (name, seconds) in enumerate(tracks.items()):
        folder = root / "audio" / name
        make_track(folder, seconds, rate, seed=i)
        uttid = name.replace(" ", "_")
        rows["wav.scp"].append(f"{uttid} {folder / 'mixture.wav'}\n")
        for k, stem in enumerate(STEMS):
            rows[f"spk{k + 1}.scp"].append(f"{uttid} {folder / f'{stem}.wav'}\n")
    for name, lines in rows.items():
        (data / name).write_text("".join(lines))
    uttids = [n.replace(" ", "_") for n in tracks]
    (data / "utt2spk").write_text("".join(f"{u} {u}\n" for u in uttids))
    (data / "spk2utt").write_text("".join(f"{u} {u}\n" for u in uttids))
    (data / "stems").write_text("".join(f"{s}\n" for s in STEMS))
    return data


def format_data(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(LOCAL / "format_data.py"), *args], cwd=cwd)


def format_then_filter(tmp_path: Path, songs: dict, *filter_opts: str):
    """Stage 3 (format to ``org``, which must succeed) then stage 4 (filter ``org`` into
    ``train`` with ``filter_opts``) on a data dir of ``songs``; the filter's process."""
    data = make_data_dir(tmp_path, songs)
    fmt = format_data("format", "--src", str(data), "--dst", "org", "--fs", "44.1k", cwd=tmp_path)
    assert fmt.returncode == 0, fmt.stderr
    args = ("filter", "--src", "org", "--dst", "train", "--fs", "44.1k", *filter_opts)
    return format_data(*args, cwd=tmp_path)


def test_parse_fs():
    fmt = load(LOCAL / "format_data.py")
    assert fmt.parse_fs("44.1k") == 44100
    assert fmt.parse_fs("22.05k") == 22050
    assert fmt.parse_fs("16000") == 16000
    for bad in ("abc", "-8k", "44.1001k"):
        with pytest.raises(fmt.FormatError, match="bad sampling rate"):
            fmt.parse_fs(bad)


def test_format_references_files_already_at_the_rate(tmp_path):
    data = make_data_dir(tmp_path, {"Song A": 1.0, "Song B": 1.5})
    proc = format_data(
        "format", "--src", str(data), "--dst", "dump/org/train", "--fs", "44.1k", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "10 files referenced in place, 0 written" in proc.stdout
    dst = tmp_path / "dump" / "org" / "train"
    assert (dst / "wav.scp").read_text() == (data / "wav.scp").read_text()
    assert (dst / "spk3.scp").read_text() == (data / "spk3.scp").read_text()
    assert (dst / "utt2num_samples").read_text() == "Song_A 44100\nSong_B 66150\n"
    assert (dst / "stems").read_text().split() == list(STEMS)
    assert (dst / "utt2spk").read_text() == "Song_A Song_A\nSong_B Song_B\n"
    assert not (dst / "data").exists()


def test_format_resamples_whole_stereo_tracks_keeping_scale(tmp_path):
    data = make_data_dir(tmp_path, {"Song A": 1.0})
    proc = format_data(
        "format",
        "--src",
        str(data),
        "--dst",
        "dump/org/train",
        "--fs",
        "16k",
        "--nj",
        "2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    dst = tmp_path / "dump" / "org" / "train"
    mix_path = (dst / "wav.scp").read_text().split(maxsplit=1)[1].strip()
    assert mix_path == "dump/org/train/data/Song_A/mixture.wav"
    mix, rate = sf.read(tmp_path / mix_path, always_2d=True)
    assert rate == 16000 and mix.shape == (16000, 2)
    assert sf.info(tmp_path / mix_path).subtype == "FLOAT"
    assert (dst / "utt2num_samples").read_text() == "Song_A 16000\n"
    stems = []
    for k in range(4):
        path = (dst / f"spk{k + 1}.scp").read_text().split(maxsplit=1)[1].strip()
        stems.append(sf.read(tmp_path / path, always_2d=True)[0])
    # resampling is linear: the mixture is still the sum of the stems (up to PCM_16 rounding)
    assert np.max(np.abs(mix - sum(stems))) < 1e-3
    original, _ = sf.read(tmp_path / "audio" / "Song A" / "mixture.wav", always_2d=True)
    assert np.std(mix) == pytest.approx(np.std(original), rel=0.02)


def test_format_flac_and_length_mismatch(tmp_path):
    data = make_data_dir(tmp_path, {"Song A": 0.5})
    proc = format_data(
        "format",
        "--src",
        str(data),
        "--dst",
        "out",
        "--fs",
        "44.1k",
        "--audio_format",
        "flac",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert sf.info(tmp_path / "out" / "data" / "Song_A" / "spk2.flac").format == "FLAC"
    bass = tmp_path / "audio" / "Song A" / "bass.wav"
    sf.write(bass, np.zeros((100, 2), np.float32), 44100)
    proc = format_data("format", "--src", str(data), "--dst", "out2", "--fs", "44.1k", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("format_data.py: error: Song_A: ")
    assert "100 frames x 2 channels but the mixture has 22050 x 2" in proc.stderr
    assert not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out2")]


def test_format_missing_inputs(tmp_path):
    proc = format_data("format", "--src", "nowhere", "--dst", "out", "--fs", "44.1k", cwd=tmp_path)
    assert proc.returncode == 1
    assert "nowhere: data directory not found" in proc.stderr
    data = make_data_dir(tmp_path, {"Song A": 0.2})
    (data / "spk4.scp").unlink()
    proc = format_data("format", "--src", str(data), "--dst", "out", "--fs", "44.1k", cwd=tmp_path)
    assert proc.returncode == 1 and "spk4.scp: file not found" in proc.stderr


def test_filter_drops_only_short_items_and_never_long_songs(tmp_path):
    songs = {"Tiny": 0.05, "Song A": 1.0, "Song B": 2.0}
    proc = format_then_filter(tmp_path, songs, "--min_duration", "0.1", "--max_duration", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert "removed Tiny (0.05 s < --min_duration 0.1 s)" in proc.stdout
    assert "1 track(s) longer than --max_duration 1.5 s are kept whole" in proc.stdout
    kept = (tmp_path / "train" / "wav.scp").read_text().split("\n")
    assert [line.split()[0] for line in kept if line] == ["Song_A", "Song_B"]
    for name in ("spk1.scp", "utt2spk", "spk2utt", "utt2num_samples"):
        assert "Tiny" not in (tmp_path / "train" / name).read_text()
    assert (tmp_path / "train" / "stems").read_text().split() == list(STEMS)


def test_filter_refuses_to_empty_a_set(tmp_path):
    proc = format_then_filter(tmp_path, {"Song A": 0.2}, "--min_duration", "1")
    assert proc.returncode == 1
    assert "every item is shorter than --min_duration 1.0 s" in proc.stderr
    assert not (tmp_path / "train").exists()


# ------------------------------------------------------------------------------ separate_dir.py
def tiny_experiment(folder: Path, stem_names=STEMS) -> Path:
    """An ESPnet-style experiment dir with a tiny random BS-Locoformer (stereo, 4 stems)."""
    from standalone import BSLocoformerSeparator

    conf = dict(
        num_spk=4,
        sample_rate=16000,
        stft_size=256,
        stereo=True,
        n_layers=1,
        emb_dim=8,
        n_heads=2,
        attention_dim=8,
        ffn_hidden_dim=[16, 16],
    )
    torch.manual_seed(0)
    net = BSLocoformerSeparator(**conf)
    folder.mkdir(parents=True)
    config = {
        "encoder": "stft",
        "encoder_conf": {"n_fft": 256, "hop_length": 64},
        "decoder": "stft",
        "decoder_conf": {"n_fft": 256, "hop_length": 64},
        "separator": "bslocoformer",
        "separator_conf": {**conf, "stem_names": list(stem_names)},
        "model_conf": {"normalize_variance": True},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    state = {f"separator.{k}": v for k, v in net.state_dict().items()}
    torch.save(state, folder / "valid.loss.ave.pth")
    return folder


def separate_dir(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(LOCAL / "separate_dir.py"), *args], cwd=cwd)


def test_separate_dir_writes_stems_at_input_rate_length_and_scale(tmp_path):
    from standalone.api import Separator

    exp = tiny_experiment(tmp_path / "exp")
    make_track(tmp_path / "audio" / "Song A", 1.3, 22050, seed=1)
    make_track(tmp_path / "audio" / "Song B", 0.7, 22050, seed=2)
    scp = tmp_path / "keys.scp"
    scp.write_text(
        f"Song_B {tmp_path / 'audio/Song B/mixture.wav'}\n"
        f"Song_A {tmp_path / 'audio/Song A/mixture.wav'}\n"
    )
    proc = separate_dir(
        "separate",
        "--model_dir",
        "exp",
        "--wav_scp",
        str(scp),
        "--out_dir",
        "enh",
        "--scp_dir",
        "enh/logdir/output.1",
        "--segment",
        "1.0",
        "--overlap",
        "0.5",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Song_A: 1.3 s of audio" in proc.stdout
    out = tmp_path / "enh"
    scp1 = (out / "logdir" / "output.1" / "spk1.scp").read_text().splitlines()
    assert scp1 == ["Song_B enh/wavs/Song_B/vocals.wav", "Song_A enh/wavs/Song_A/vocals.wav"]
    mixture, rate = sf.read(
        tmp_path / "audio" / "Song A" / "mixture.wav", dtype="float32", always_2d=True
    )
    # 1 s chunks at the model's 16 kHz, crossfades of 8000 samples
    sep = Separator.from_pretrained(exp, segment=1.0, overlap=0.5, seed=0)
    expected = sep(torch.from_numpy(mixture.T.copy()), rate)
    for stem in STEMS:
        info = sf.info(out / "wavs" / "Song_A" / f"{stem}.wav")
        assert (info.samplerate, info.frames, info.channels) == (22050, 28665, 2)
        assert info.subtype == "FLOAT"
        audio, _ = sf.read(out / "wavs" / "Song_A" / f"{stem}.wav", dtype="float32")
        assert np.isfinite(audio).all(), stem
        np.testing.assert_allclose(audio.T, expected[stem].numpy(), atol=1e-6)

    proc = separate_dir("merge", "--out_dir", "enh", "enh/logdir/output.1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "spk4.scp").read_text().splitlines() == [
        "Song_A enh/wavs/Song_A/other.wav",
        "Song_B enh/wavs/Song_B/other.wav",
    ]


def test_separate_dir_reorders_stems_and_rejects_foreign_ones(tmp_path):
    make_track(tmp_path / "audio" / "S", 0.3, 16000)
    scp = tmp_path / "keys.scp"
    scp.write_text(f"S {tmp_path / 'audio/S/mixture.wav'}\n")
    tiny_experiment(tmp_path / "exp1", stem_names=("bass", "other", "vocals", "drums"))
    proc = separate_dir(
        "separate", "--model_dir", "exp1", "--wav_scp", str(scp), "--out_dir", "o1", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o1" / "spk1.scp").read_text() == "S o1/wavs/S/vocals.wav\n"
    assert (tmp_path / "o1" / "spk3.scp").read_text() == "S o1/wavs/S/bass.wav\n"

    tiny_experiment(tmp_path / "exp2", stem_names=("a", "b", "c", "d"))
    proc = separate_dir(
        "separate", "--model_dir", "exp2", "--wav_scp", str(scp), "--out_dir", "o2", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "the model's stems ['a', 'b', 'c', 'd'] are not the recipe's" in proc.stderr
    assert not (tmp_path / "o2").exists()


def test_separate_dir_errors(tmp_path):
    tiny_experiment(tmp_path / "exp")
    scp = tmp_path / "keys.scp"
    scp.write_text("S missing.wav\n")
    proc = separate_dir(
        "separate", "--model_dir", "exp", "--wav_scp", str(scp), "--out_dir", "o", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("separate_dir.py: error: missing.wav: cannot read audio")
    proc = separate_dir(
        "separate",
        "--model_dir",
        "exp",
        "--checkpoint",
        "exp/none.pth",
        "--wav_scp",
        str(scp),
        "--out_dir",
        "o",
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "none.pth" in proc.stderr and "not found" in proc.stderr
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        for n in range(1, 5):
            (tmp_path / folder / f"spk{n}.scp").write_text("S x.wav\n")
    proc = separate_dir("merge", "--out_dir", "o", "a", "b", cwd=tmp_path)
    assert proc.returncode == 1 and "S was separated by more than one job" in proc.stderr


# --------------------------------------------------------------------------- collect_results.py
def fake_scoring(folder: Path, name: str, usdr: float, mix: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "RESULTS.md").write_text(
        "<!-- Generated by local/score_musdb.py -->\n# RESULTS\n## Environments\n"
        "- python version: `3`\n\n"
        f"## {name}\n|stem|uSDR|\n|---|---|\n|mean|{usdr}|\n"
    )
    mean = {
        "model": {"uSDR": usdr, "cSDR": None},
        "mixture": {"uSDR": mix, "cSDR": None},
    }
    (folder / "results.json").write_text(json.dumps({"name": name, "mean_over_stems": mean}))
    return folder


def test_collect_results_combines_sets(tmp_path):
    exp = tmp_path / "exp"
    a = fake_scoring(exp / "enhanced_valid" / "scoring", "valid", 3.0, -5.0)
    b = fake_scoring(exp / "enhanced_test" / "scoring", "test", 2.5, -4.0)
    proc = run(
        [
            sys.executable,
            str(LOCAL / "collect_results.py"),
            "--exp_dir",
            str(exp),
            "--config",
            "conf/x.yaml",
            "--inference_model",
            "valid.loss.ave.pth",
            str(a),
            str(b),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "valid: mean over stems: uSDR 3.00 dB (mixture -5.00, +8.00)",
        "test: mean over stems: uSDR 2.50 dB (mixture -4.00, +6.50)",
    ]
    text = (exp / "RESULTS.md").read_text()
    assert text.count("## Environments") == 1
    assert text.index("## Experiment") < text.index("## valid") < text.index("## test")
    assert "- config: `conf/x.yaml`" in text and "valid.loss.ave.pth" in text
    assert "|mean|2.5|" in text


def test_collect_results_missing_scoring(tmp_path):
    (tmp_path / "exp").mkdir()
    proc = run(
        [
            sys.executable,
            str(LOCAL / "collect_results.py"),
            "--exp_dir",
            str(tmp_path / "exp"),
            "--config",
            "c",
            "--inference_model",
            "m",
            str(tmp_path / "exp" / "nothing"),
        ]
    )
    assert proc.returncode == 1
    assert "RESULTS.md: not found (run the scoring first)" in proc.stderr
    assert not (tmp_path / "exp" / "RESULTS.md").exists()


# ---------------------------------------------------------------------------------- nltk_stub.py
def test_nltk_stub_satisfies_the_lookup(tmp_path):
    stub = load(UTILS / "nltk_stub.py")
    created = stub.make_stub(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in created) == sorted(stub.RESOURCES)
    for name in stub.RESOURCES:
        assert zipfile.is_zipfile(tmp_path / name)
    assert stub.make_stub(tmp_path) == []
    pytest.importorskip("nltk")
    # the lookups g2p_en makes at import time (before it would try to download)
    check = "import nltk; " + "; ".join(f"nltk.data.find({n!r})" for n in stub.RESOURCES)
    proc = run([sys.executable, "-c", check], env={**os.environ, "NLTK_DATA": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr


# -------------------------------------------------------------------------------- model_stats.py
def test_model_stats_header_and_estimate(tmp_path):
    stats = load(LOCAL / "model_stats.py")
    assert stats.linear_estimate([(1, 3.0), (2, 5.0)], 4) == pytest.approx(9.0)
    assert stats.linear_estimate([(2, 4.0)], 4) == pytest.approx(8.0)
    config = tmp_path / "c.yaml"
    config.write_text(
        "# title\n# Parameters: old\n# Training memory: old\nbatch_size: 4\nchunk_length: 44100\n"
    )
    gib = stats.GIB
    results = [
        {"params": 1234567, "batch_size": 1, "samples": 44100, "rate": 44100, "bytes": gib},
        {"params": 1234567, "batch_size": 2, "samples": 44100, "rate": 44100, "bytes": 2 * gib},
    ]
    params, memory = stats.header_lines(config, results, "cpu")
    assert params == "# Parameters: 1.23 M (1,234,567)"
    assert memory.startswith("# Training memory: 4.0 GiB for batch_size 4 x 1 s (CPU, fp32; ")
    assert "linear in batch x seconds from 1.00 GiB at batch 1, 2.00 GiB at batch 2 x 1 s" in memory
    stats.write_header(config, params, memory)
    lines = config.read_text().splitlines()
    assert lines[1] == params and lines[2] == memory and lines[3] == "batch_size: 4"
    with pytest.raises(RuntimeError, match="no '# Parameters:' line"):
        stats.write_header(_headerless(tmp_path), "a", "b")


def _headerless(tmp_path: Path) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text("batch_size: 1\n")
    return path


def test_every_recipe_config_states_measured_params_and_memory():
    configs = sorted((RECIPE / "conf" / "tuning").glob("*.yaml"))
    assert {c.name for c in configs} >= {
        "train_enh_bslocoformer.yaml",
        "train_enh_bslocoformer_small.yaml",
        "train_enh_bslocoformer_medium.yaml",
        "train_enh_bslocoformer_large.yaml",
        "train_enh_tflocoformer.yaml",
        "train_enh_tflocoformer_nope.yaml",
        "train_enh_bslocoformer_demo_cpu.yaml",
    }
    for config in configs:
        text = config.read_text()
        assert "# Parameters: " in text and " M (" in text, config.name
        assert "# Training memory: " in text and " GiB for batch_size " in text, config.name
        conf = yaml.safe_load(text)
        assert conf["separator_conf"]["stem_names"] == list(STEMS), config.name
        assert conf["grad_clip"] == 5.0 and conf["use_tensorboard"] is True, config.name
        link = RECIPE / "conf" / config.name
        assert link.is_symlink() and link.resolve() == config.resolve(), config.name
        if "demo" not in config.name:
            assert conf["encoder_conf"]["n_fft"] == 2048, config.name
            assert conf["encoder_conf"]["hop_length"] == 512, config.name
            assert conf["use_amp"] is True and "warmup" in conf["scheduler"], config.name


@pytest.mark.slow
def test_model_stats_measures_the_demo_config(tmp_path):
    pytest.importorskip("espnet2")
    from plugin_env import require_plugin

    require_plugin()
    config = RECIPE / "conf" / "tuning" / "train_enh_bslocoformer_demo_cpu.yaml"
    proc = run(
        [
            sys.executable,
            str(LOCAL / "model_stats.py"),
            str(config),
            "--batch_sizes",
            "1",
            "--seconds",
            "0.5",
        ],
        cwd=RECIPE,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    params = int(lines[1].split("(")[1].rstrip(")").replace(",", ""))
    from standalone.checkpoint import build_separator

    conf = yaml.safe_load(config.read_text())
    net = build_separator("bslocoformer", conf["separator_conf"])
    assert params == sum(p.numel() for p in net.parameters())
    gib = float(lines[2].split("Training memory: ")[1].split()[0])
    assert 0 < gib < 8 and math.isfinite(gib)
