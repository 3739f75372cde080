"""Music augmentation preprocessor (``preprocessor: music_augment``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from plugin_env import require_plugin

require_plugin()

from espnet2.enh.music_augmentation import MusicAugmentPreprocessor  # noqa: E402
from espnet2.tasks.enh import EnhancementTask  # noqa: E402

LENGTH = 600
TRACKS = ["Artist_A", "Artist_B", "Artist_C"]


def stem_value(track: int, stem: int) -> float:
    """Every (track, stem) is a constant signal with its own value: left v, right v + 0.5."""
    return 1.0 + 10.0 * track + stem


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A tiny ESPnet data dir: wav.scp + spk1..4.scp of 3 stereo tracks (paths with spaces)."""
    scps = {name: [] for name in ["wav.scp"] + [f"spk{k}.scp" for k in range(1, 5)]}
    for t, uid in enumerate(TRACKS):
        folder = tmp_path / "audio" / uid.replace("_", " ")
        folder.mkdir(parents=True)
        stems = []
        for k in range(4):
            v = stem_value(t, k)
            stem = np.stack([np.full(LENGTH, v), np.full(LENGTH, v + 0.5)], axis=1) / 100
            sf.write(folder / f"stem{k}.wav", stem, 8000, subtype="FLOAT")
            scps[f"spk{k + 1}.scp"].append(f"{uid} {folder / f'stem{k}.wav'}")
            stems.append(stem)
        sf.write(folder / "mixture.wav", sum(stems) * 0.99, 8000, subtype="FLOAT")
        scps["wav.scp"].append(f"{uid} {folder / 'mixture.wav'}")
    for name, lines in scps.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def example(data_dir: Path, track: int) -> dict[str, np.ndarray]:
    """What ESPnet's loader hands the preprocessor: ``[L, 2]`` float32 arrays."""
    uid = TRACKS[track]
    out = {}
    for name, key in [("wav.scp", "speech_mix")] + [
        (f"spk{k}.scp", f"speech_ref{k}") for k in range(1, 5)
    ]:
        line = next(ln for ln in (data_dir / name).read_text().splitlines() if ln.startswith(uid))
        out[key] = sf.read(line.split(maxsplit=1)[1], dtype="float32")[0]
    return out


def stems_of(data: dict) -> list[np.ndarray]:
    return [data[f"speech_ref{k}"] for k in range(1, 5)]


def scps(data_dir: Path) -> list[str]:
    return [str(data_dir / f"spk{k}.scp") for k in range(1, 5)]


def test_mixture_is_the_sum_of_the_augmented_stems(data_dir: Path):
    np.random.seed(0)
    pre = MusicAugmentPreprocessor(
        train=True,
        stem_scps=scps(data_dir),
        remix_prob=0.5,
        gain_db=[-6.0, 3.0],
        channel_swap_prob=0.5,
        polarity_flip_prob=0.5,
    )
    changed = 0
    for _ in range(8):
        ex = example(data_dir, 0)
        original = [s.copy() for s in stems_of(ex)]
        out = pre(TRACKS[0], ex)
        stems = stems_of(out)
        assert all(s.dtype == np.float32 and s.shape == (LENGTH, 2) for s in stems)
        np.testing.assert_allclose(out["speech_mix"], np.sum(stems, axis=0), rtol=0, atol=1e-7)
        changed += sum(not np.allclose(a, b) for a, b in zip(original, stems))
    assert changed > 8  # the stems really were augmented


def test_remix_takes_the_same_stem_of_another_track(data_dir: Path):
    np.random.seed(1)
    pre = MusicAugmentPreprocessor(train=True, stem_scps=scps(data_dir), remix_prob=1.0)
    seen = set()
    for _ in range(10):
        out = pre(TRACKS[0], example(data_dir, 0))
        for k, stem in enumerate(stems_of(out)):
            left = stem[:, 0] * 100
            assert np.allclose(left, left[0], atol=1e-4)  # one whole stem, not a blend
            track = round((left[0] - 1.0 - k) / 10.0)
            assert track in (1, 2), "remixing must pick the same stem of another track"
            assert np.allclose(stem[:, 1] * 100, left + 0.5, atol=1e-4)
            seen.add(track)
    assert seen == {1, 2}


def test_gain_swap_and_flip(data_dir: Path):
    np.random.seed(2)
    pre = MusicAugmentPreprocessor(
        train=True, gain_db=[-12.0, -6.0], channel_swap_prob=1.0, polarity_flip_prob=1.0
    )
    out = pre(TRACKS[1], example(data_dir, 1))
    for k, stem in enumerate(stems_of(out)):
        v = stem_value(1, k) / 100
        gain = -stem[0, 1] / v  # right channel now holds the (flipped) left one
        assert 10 ** (-12 / 20) - 1e-6 <= gain <= 10 ** (-6 / 20) + 1e-6
        np.testing.assert_allclose(stem[:, 0], -gain * (v + 0.005), rtol=1e-5)


def test_validation_examples_are_untouched(data_dir: Path):
    pre = MusicAugmentPreprocessor(
        train=False,
        stem_scps=scps(data_dir),
        segment_length=100,
        remix_prob=1.0,
        gain_db=[-12.0, 0.0],
        channel_swap_prob=1.0,
        polarity_flip_prob=1.0,
    )
    ex = example(data_dir, 2)
    want = {k: v.copy() for k, v in ex.items()}
    out = pre(TRACKS[2], ex)
    assert out.keys() == want.keys()
    for k in want:
        assert np.array_equal(out[k], want[k]), k  # stored mixture kept, nothing cropped


def test_segment_crop_is_shared_by_all_stems(data_dir: Path):
    np.random.seed(3)
    ex = example(data_dir, 0)
    ramp = np.linspace(0, 1, LENGTH, dtype=np.float32)[:, None]
    for k in range(1, 5):
        ex[f"speech_ref{k}"] = ex[f"speech_ref{k}"] + ramp
    out = MusicAugmentPreprocessor(train=True, segment_length=128)(TRACKS[0], ex)
    stems = stems_of(out)
    assert all(s.shape == (128, 2) for s in stems) and out["speech_mix"].shape == (128, 2)
    segments = [s[:, 0] - stem_value(0, k) / 100 for k, s in enumerate(stems)]
    for seg in segments[1:]:
        np.testing.assert_allclose(seg, segments[0], atol=1e-6)  # one offset for all stems
    start = round(float(segments[0][0]) * (LENGTH - 1))
    np.testing.assert_allclose(segments[0], ramp[start : start + 128, 0], atol=1e-5)


def test_ranks_draw_different_augmentations(data_dir: Path, monkeypatch):
    def run(rank: str) -> np.ndarray:
        monkeypatch.setenv("RANK", rank)
        np.random.seed(4)
        pre = MusicAugmentPreprocessor(train=True, gain_db=[-12.0, 0.0])
        return pre(TRACKS[0], example(data_dir, 0))["speech_mix"]

    assert np.array_equal(run("0"), run("0"))
    assert not np.allclose(run("0"), run("1"))


def test_bad_settings_and_sources_give_clear_errors(data_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match=r"remix_prob must be in \[0, 1\], got 1.5"):
        MusicAugmentPreprocessor(train=True, remix_prob=1.5, stem_scps=scps(data_dir))
    with pytest.raises(ValueError, match=r"gain_db must be \[low, high\]"):
        MusicAugmentPreprocessor(train=True, gain_db=[3.0, -3.0])
    with pytest.raises(ValueError, match="remix_prob > 0 needs the stem scp files"):
        MusicAugmentPreprocessor(train=True, remix_prob=0.5)

    missing = str(tmp_path / "nope.scp")
    pre = MusicAugmentPreprocessor(train=True, remix_prob=1.0, stem_scps=[missing] * 4)
    with pytest.raises(FileNotFoundError, match=f"stem scp not found: {missing}"):
        pre(TRACKS[0], example(data_dir, 0))

    pre = MusicAugmentPreprocessor(train=True, remix_prob=1.0, stem_scps=scps(data_dir)[:2])
    with pytest.raises(ValueError, match="Artist_A has 4 stems but only 2 stem scp files"):
        pre(TRACKS[0], example(data_dir, 0))

    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(LENGTH), 8000)
    scp = tmp_path / "mono.scp"
    scp.write_text(f"Other {mono}\n")
    pre = MusicAugmentPreprocessor(train=True, remix_prob=1.0, stem_scps=[str(scp)] * 4)
    with pytest.raises(ValueError, match=f"{mono}: 1 channel\\(s\\), the example has 2"):
        pre(TRACKS[0], example(data_dir, 0))


def test_espnet_builds_it_from_the_config(data_dir: Path):
    """The enh.py patch hands the training data triples to the preprocessor."""
    args = argparse.Namespace(
        preprocessor="music_augment",
        preprocessor_conf={"remix_prob": 1.0, "polarity_flip_prob": 1.0},
        train_data_path_and_name_and_type=[
            (str(data_dir / "wav.scp"), "speech_mix", "sound"),
            *[(s, f"speech_ref{k}", "sound") for k, s in enumerate(scps(data_dir), 1)],
        ],
    )
    train_fn = EnhancementTask.build_preprocess_fn(args, train=True)
    valid_fn = EnhancementTask.build_preprocess_fn(args, train=False)
    assert isinstance(train_fn, MusicAugmentPreprocessor)
    assert train_fn.stem_scps == scps(data_dir)
    np.random.seed(5)
    out = train_fn(TRACKS[0], example(data_dir, 0))
    assert all((s < 0).all() for s in stems_of(out))  # flipped ...
    assert np.allclose(out["speech_mix"], np.sum(stems_of(out), axis=0))  # ... and re-summed
    ex = example(data_dir, 0)
    assert np.array_equal(valid_fn(TRACKS[0], dict(ex))["speech_mix"], ex["speech_mix"])
