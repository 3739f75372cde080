"""Training through ESPnet: enh_train on a synthetic stereo 4-stem data dir, and overfitting."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from plugin_env import STEMS, build_model, require_plugin, tiny_music_config, write_yaml

ESPNET_ROOT = require_plugin()

FS = 8000
LENGTH = 4000


def song(index: int, rng: np.random.Generator, length: int = LENGTH) -> list[np.ndarray]:
    """Four easy stereo stems ``[L, 2]``: a vocal-like tone, clicks, a bass tone, a high tone."""
    t = np.arange(length) / FS
    detune = 1.0 + 0.07 * index
    mono = [
        0.2 * np.sin(2 * np.pi * 440 * detune * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)),
        (rng.random(length) < 0.01) * rng.standard_normal(length),
        0.3 * np.sin(2 * np.pi * 80 * detune * t),
        0.1 * np.sin(2 * np.pi * 1500 * detune * t),
    ]
    pans = [(0.8, 0.6), (0.5, 0.9), (0.7, 0.7), (0.9, 0.3)]
    return [
        np.stack([s * left, s * right], axis=1).astype(np.float32)
        for s, (left, right) in zip(mono, pans)
    ]


def make_data_dir(root: Path, split: str, n: int, seed: int) -> Path:
    """ESPnet data dir: wav.scp, spk1..4.scp (paths with spaces), speech_mix_shape."""
    rng = np.random.default_rng(seed)
    out = root / split
    audio = root / "audio" / split
    audio.mkdir(parents=True)
    out.mkdir()
    scp = {name: [] for name in ["wav.scp"] + [f"spk{k}.scp" for k in range(1, 5)]}
    shapes = []
    for i in range(n):
        uid = f"{split}_track{i}"
        stems = song(i, rng)
        for k, (stem, name) in enumerate(zip(stems, STEMS), 1):
            path = audio / f"{uid} {name}.wav"
            sf.write(path, stem, FS, subtype="FLOAT")
            scp[f"spk{k}.scp"].append(f"{uid} {path}")
        path = audio / f"{uid} mixture.wav"
        sf.write(path, sum(stems), FS, subtype="FLOAT")
        scp["wav.scp"].append(f"{uid} {path}")
        shapes.append(f"{uid} {LENGTH},2")
    for name, lines in scp.items():
        (out / name).write_text("\n".join(lines) + "\n")
    (out / "speech_mix_shape").write_text("\n".join(shapes) + "\n")
    return out


def data_args(kind: str, data: Path) -> list[str]:
    args = [f"--{kind}_data_path_and_name_and_type", f"{data}/wav.scp,speech_mix,sound"]
    for k in range(1, 5):
        args += [f"--{kind}_data_path_and_name_and_type", f"{data}/spk{k}.scp,speech_ref{k},sound"]
    return args + [f"--{kind}_shape_file", f"{data}/speech_mix_shape"]


@pytest.mark.slow
def test_enh_train_two_epochs_on_stereo_stems(tmp_path: Path):
    train = make_data_dir(tmp_path / "data", "train", 3, seed=0)
    valid = make_data_dir(tmp_path / "data", "valid", 2, seed=1)
    config = tiny_music_config(
        criterions=[
            dict(
                name="mc_snr",
                conf=dict(snr_max=30),
                wrapper="stem_fixed_order",
                wrapper_conf=dict(weight=1.0, stem_names=STEMS),
            ),
            dict(
                name="mc_mrstft",
                conf=dict(n_ffts=[64, 128]),
                wrapper="stem_fixed_order",
                wrapper_conf=dict(weight=0.1, stem_names=STEMS),
            ),
        ]
    )
    config.update(
        preprocessor="music_augment",
        preprocessor_conf=dict(
            remix_prob=0.5, gain_db=[-3, 3], channel_swap_prob=0.5, polarity_flip_prob=0.5
        ),
        optim="adam",
        optim_conf=dict(lr=0.002),
        max_epoch=2,
        batch_type="unsorted",
        batch_size=2,  # stereo batches > 1 with normalize_variance
        iterator_type="chunk",  # random segments of songs, as the MUSDB recipe trains
        chunk_length=3000,
        num_workers=1,  # the preprocessor runs in a data-loader worker
        keep_nbest_models=2,
        best_model_criterion=[["valid", "loss", "min"]],
        num_att_plot=0,
        use_matplotlib=False,
    )
    exp = tmp_path / "exp"
    cmd = [
        sys.executable, "-m", "espnet2.bin.enh_train",
        "--config", str(write_yaml(tmp_path / "train.yaml", config)),
        "--output_dir", str(exp), "--ngpu", "0",
        *data_args("train", train), *data_args("valid", valid),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ESPNET_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = dict(re.findall(r"(\d+)epoch results: .*?\[valid\] (.*)", proc.stderr))
    assert sorted(results) == ["1", "2"], proc.stderr[-3000:]
    for epoch, valid_stats in results.items():
        stats = dict(kv.split("=", 1) for kv in valid_stats.split(", ") if "=" in kv)
        assert math.isfinite(float(stats["loss"])), (epoch, stats)
        for stem in STEMS:  # the stem wrapper reports every stem
            assert math.isfinite(float(stats[f"mc_snr_loss_{stem}"]))

    for name in (
        "1epoch.pth",
        "2epoch.pth",
        "checkpoint.pth",
        "valid.loss.best.pth",
        "config.yaml",
    ):
        assert (exp / name).exists(), name
    state = torch.load(exp / "2epoch.pth", map_location="cpu", weights_only=True)
    assert state and all(k.startswith("separator.") for k in state)
    assert all(torch.isfinite(v).all() for v in state.values())

    from standalone.checkpoint import load_separator

    model, info = load_separator(model_dir=exp)
    assert info["stem_names"] == STEMS and info["num_channels"] == 2
    assert info["normalize_variance"] is True


def test_overfits_one_stereo_batch():
    """A tiny model must halve its L1 loss on one fixed batch within 100 Adam steps."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    stems = [song(i, rng, length=1200) for i in range(2)]  # batch of 2 songs
    refs = {
        f"speech_ref{k + 1}": torch.from_numpy(np.stack([stems[b][k] for b in range(2)]))
        for k in range(4)
    }
    batch = dict(
        speech_mix=sum(refs.values()), speech_mix_lengths=torch.tensor([1200, 1200]), **refs
    )
    model = build_model(tiny_music_config()).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest on a busy machine
    try:
        for _ in range(100):
            loss, _, _ = model(**batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if losses[-1] <= 0.5 * losses[0]:
                break
    finally:
        torch.set_num_threads(threads)
    assert all(math.isfinite(v) for v in losses)
    assert min(losses) <= 0.5 * losses[0], (losses[0], losses[-5:])
