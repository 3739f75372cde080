"""The MUSDB18-HQ recipe end to end: ``run.sh --stage 1 --stop_stage 8`` on a tiny synthetic set.

The recipe is copied into a temporary tree laid out like this repository (``egs2/musdb18hq/enh1``
plus a link to ``standalone/``), so runs never write into the checkout. Stages 5-6 need ESPnet
with this plugin installed (``make test`` installs it into the venv).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from conftest import REPO_ROOT

RECIPE = REPO_ROOT / "egs2" / "musdb18hq" / "enh1"
STEMS = ("vocals", "drums", "bass", "other")
GENERATED = ("data", "dump", "exp", "synthetic_musdb", "downloads", "separated")

# A BS-Locoformer small enough to train for a few steps in seconds (44.1 kHz, stereo, 4 stems).
TINY_CONFIG = {
    "seed": 0,
    "max_epoch": 1,
    "num_workers": 0,
    "num_att_plot": 0,
    "iterator_type": "chunk",
    "chunk_length": 22050,
    "batch_size": 2,
    "valid_batch_size": 1,
    "grad_clip": 5.0,
    "keep_nbest_models": 1,
    "best_model_criterion": [["valid", "loss", "min"]],
    "optim": "adam",
    "optim_conf": {"lr": 1.0e-3},
    "model_conf": {"normalize_variance": True, "all_channel_loss": True},
    "encoder": "stft",
    "encoder_conf": {"n_fft": 256, "hop_length": 128},
    "decoder": "stft",
    "decoder_conf": {"n_fft": 256, "hop_length": 128},
    "separator": "bslocoformer",
    "separator_conf": {
        "num_spk": 4,
        "sample_rate": 44100,
        "stft_size": 256,
        "stereo": True,
        "n_layers": 1,
        "emb_dim": 8,
        "n_heads": 2,
        "attention_dim": 8,
        "ffn_hidden_dim": [16, 16],
        "stem_names": list(STEMS),
    },
    "criterions": [
        {
            "name": "mc_snr",
            "conf": {},
            "wrapper": "stem_fixed_order",
            "wrapper_conf": {"weight": 1.0, "stem_names": list(STEMS)},
        }
    ],
}
SYNTHETIC = (
    "--synthetic true --num_train 3 --num_valid 1 --num_test 1 --min_duration 3 --max_duration 4"
)


def make_tree(root: Path) -> Path:
    """Copy the recipe (without generated data) into ``root``; returns the recipe dir."""
    recipe = root / "egs2" / "musdb18hq" / "enh1"
    shutil.copytree(RECIPE, recipe, symlinks=True, ignore=shutil.ignore_patterns(*GENERATED))
    (root / "standalone").symlink_to(REPO_ROOT / "standalone")
    return recipe


def env() -> dict[str, str]:
    """The test interpreter's environment first on PATH (the recipe calls ``python3``)."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {**os.environ, "PATH": path}


def run_sh(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./run.sh", "--python", sys.executable, *args],
        cwd=recipe,
        capture_output=True,
        text=True,
        env=env(),
    )


def test_help_and_bad_options(tmp_path):
    recipe = make_tree(tmp_path)
    proc = run_sh(recipe, "--help")
    assert proc.returncode == 0
    assert "Usage: ./run.sh [options]" in proc.stdout and "--inference_model" in proc.stdout
    proc = run_sh(recipe, "--stgae", "3")
    assert proc.returncode == 2 and "unknown option --stgae" in proc.stderr
    proc = run_sh(recipe, "--demo", "maybe")
    assert proc.returncode == 2 and "takes true or false" in proc.stderr
    proc = run_sh(recipe, "--stage", "1", "extra")
    assert proc.returncode == 2 and "unexpected argument 'extra'" in proc.stderr


def test_missing_musdb_path_is_a_clear_error(tmp_path):
    recipe = make_tree(tmp_path)
    proc = run_sh(recipe, "--stage", "1", "--stop_stage", "1")
    assert proc.returncode != 0
    assert "MUSDB18HQ is not set" in proc.stderr and "db.sh" in proc.stderr
    assert not (recipe / "data" / "train").exists()
    missing = tmp_path / "no" / "musdb18hq"
    proc = run_sh(
        recipe, "--stage", "1", "--stop_stage", "1", "--local_data_opts", f"--musdb_root {missing}"
    )
    assert proc.returncode != 0
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stage7_without_a_model_says_so(tmp_path):
    recipe = make_tree(tmp_path)
    proc = run_sh(recipe, "--stage", "7", "--stop_stage", "7", "--enh_exp", "exp/none")
    assert proc.returncode == 1
    assert "exp/none/valid.loss.ave.pth not found" in proc.stderr


def usable_results(path: Path) -> dict:
    results = json.loads(path.read_text())
    for stem in STEMS:
        for metric in ("cSDR", "uSDR", "SI-SDR"):
            value = results["per_stem"][stem]["model"][metric]
            assert value is not None and math.isfinite(value), (stem, metric, value)
            base = results["per_stem"][stem]["mixture"][metric]
            assert base is not None and math.isfinite(base), (stem, metric, base)
    return results


@pytest.mark.slow
def test_all_stages_on_tiny_synthetic_data_then_stage8_alone(tmp_path):
    pytest.importorskip("espnet2")
    from plugin_env import require_plugin

    require_plugin()
    recipe = make_tree(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    args = [
        "--ngpu",
        "0",
        "--nj",
        "1",
        "--inference_nj",
        "2",
        "--enh_config",
        str(config),
        "--local_data_opts",
        SYNTHETIC,
        "--inference_args",
        "--segment 1.5 --overlap 0.25",
    ]
    proc = run_sh(recipe, "--stage", "1", "--stop_stage", "8", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    exp = recipe / "exp" / "enh_tiny_raw"
    assert (exp / "valid.loss.ave.pth").exists()
    assert "Results: exp/enh_tiny_raw/RESULTS.md" in proc.stdout
    assert "Separated test stems: exp/enh_tiny_raw/enhanced_test/wavs/<track>/<stem>.wav" in (
        proc.stdout
    )
    # whole tracks at the original rate, length and channel count
    for dset in ("valid", "test"):
        wav_scp = (recipe / "data" / dset / "wav.scp").read_text().splitlines()
        for n, stem in enumerate(STEMS, start=1):
            rows = (exp / f"enhanced_{dset}" / f"spk{n}.scp").read_text().splitlines()
            assert len(rows) == len(wav_scp)
            for row, mix_row in zip(rows, wav_scp):
                uttid, path = row.split(maxsplit=1)
                assert path == f"exp/enh_tiny_raw/enhanced_{dset}/wavs/{uttid}/{stem}.wav"
                mix = sf.info(mix_row.split(maxsplit=1)[1])
                est = sf.info(recipe / path)
                assert (est.samplerate, est.frames, est.channels) == (
                    mix.samplerate,
                    mix.frames,
                    mix.channels,
                )
        usable_results(exp / f"enhanced_{dset}" / "scoring" / "results.json")
    results_md = (exp / "RESULTS.md").read_text()
    assert "## valid" in results_md and "## test" in results_md
    assert "spk1=vocals, spk2=drums, spk3=bass, spk4=other" in results_md
    # the train set was not cut: formatted data holds whole tracks of the original length
    num_samples = (recipe / "dump" / "raw" / "train" / "utt2num_samples").read_text().split()
    assert all(int(n) >= 3 * 44100 for n in num_samples[1::2])

    (exp / "RESULTS.md").unlink()
    proc = run_sh(recipe, "--stage", "8", "--enh_config", str(config), "--score_opts", "--no-csdr")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cSDR: not computed (--no-csdr)" in (exp / "RESULTS.md").read_text()
    assert "test: mean over stems: uSDR" in proc.stdout
