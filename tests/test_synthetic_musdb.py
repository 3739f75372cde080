"""Synthetic MUSDB18-HQ generator (egs2/musdb18hq/enh1/local/make_synthetic_musdb.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

LOCAL = Path(__file__).resolve().parents[1] / "egs2" / "musdb18hq" / "enh1" / "local"
sys.path.insert(0, str(LOCAL))

import make_synthetic_musdb as synth  # noqa: E402
from stems import MIXTURE, STEMS  # noqa: E402

FILES = (MIXTURE, *STEMS)
SMALL = {"num_train": 2, "num_test": 1, "num_valid": 1, "min_duration": 3.0, "max_duration": 4.0}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "musdb"
    assert synth.make_dataset(out, seed=3, **SMALL) == "created"
    return out


def track_dirs(root: Path) -> list[Path]:
    return sorted(p for split in ("train", "test") for p in (root / split).iterdir())


def test_layout_and_manifest(small_set):
    manifest = json.loads((small_set / "manifest.json").read_text())
    assert manifest["stems"] == list(STEMS)
    assert len(manifest["tracks"]["train"]) == 2 and len(manifest["tracks"]["test"]) == 1
    for split in ("train", "test"):
        names = sorted(p.name for p in (small_set / split).iterdir())
        assert names == sorted(manifest["tracks"][split])
        for name in names:
            assert " - " in name  # "Artist - Title", with spaces like MUSDB
            assert sorted(f.name for f in (small_set / split / name).iterdir()) == sorted(
                f"{f}.wav" for f in FILES
            )
    valid = (small_set / "valid_tracks.txt").read_text().splitlines()
    assert valid == manifest["valid"] and len(valid) == 1
    assert valid[0] in manifest["tracks"]["train"]
    # nothing else (no temporary folders) next to the output
    assert [p.name for p in small_set.parent.iterdir()] == ["musdb"]


def test_audio_format_and_durations(small_set):
    for folder in track_dirs(small_set):
        infos = [sf.info(str(folder / f"{f}.wav")) for f in FILES]
        assert {(i.samplerate, i.channels, i.subtype) for i in infos} == {(44100, 2, "PCM_16")}
        assert len({i.frames for i in infos}) == 1
        assert 3.0 <= infos[0].frames / 44100 <= 4.0


def test_mixture_is_exact_sum_of_stems(small_set):
    for folder in track_dirs(small_set):
        mix = sf.read(str(folder / "mixture.wav"), dtype="int16")[0].astype(np.int32)
        total = sum(
            sf.read(str(folder / f"{s}.wav"), dtype="int16")[0].astype(np.int32) for s in STEMS
        )
        np.testing.assert_array_equal(mix, total)
        assert np.abs(mix).max() < 32767  # no clipping


def test_stems_are_not_silent_and_stereo(small_set):
    for folder in track_dirs(small_set):
        for stem in STEMS:
            audio = sf.read(str(folder / f"{stem}.wav"))[0]
            assert np.sqrt(np.mean(audio**2)) > 1e-3, (folder.name, stem)
        # panning and the room make left and right differ
        mix = sf.read(str(folder / "mixture.wav"))[0]
        assert np.abs(mix[:, 0] - mix[:, 1]).max() > 1e-2


def test_float_subtype_sums_to_mixture(tmp_path):
    out = tmp_path / "f"
    synth.make_dataset(out, 1, 1, 0, 1.0, 1.5, seed=1, subtype="FLOAT")
    folder = track_dirs(out)[0]
    assert sf.info(str(folder / "mixture.wav")).subtype == "FLOAT"
    mix = sf.read(str(folder / "mixture.wav"))[0]
    total = sum(sf.read(str(folder / f"{s}.wav"))[0] for s in STEMS)
    np.testing.assert_allclose(mix, total, atol=1e-6)


def test_vocals_have_rests_and_song_sections():
    stems = synth.synthesize_track(0, "train", 0, 20.0, 0.0, 0.0, 44100)
    vocals = stems["vocals"]
    frames = vocals[: len(vocals) // 4410 * 4410].reshape(-1, 4410, 2)
    energy = np.mean(frames**2, axis=(1, 2))
    level_db = 10 * np.log10(energy / energy.max() + 1e-30)
    assert np.mean(level_db < -50) > 0.1  # phrases separated by rests (and an intro)
    assert np.mean(level_db > -20) > 0.3  # but mostly singing
    # quantised as written, the intro before the first phrase is digital silence
    assert np.all(np.round(vocals[:4410] * 32768) == 0)
    # sections: the chorus is denser than the verse (16th hats, crash, arpeggio in "other")
    plan = synth.plan_song(np.random.default_rng([0, 0, 0]), 20.0)  # the track's own plan
    bar = round(plan.bar_s * 44100)
    bars = {"verse": [], "chorus": []}
    for sec in plan.sections:
        if sec.kind in bars:
            ends = range(sec.start_bar + 1, sec.start_bar + sec.n_bars + 1)
            bars[sec.kind] += [b - 1 for b in ends if b * bar <= len(stems["drums"])]
    assert bars["verse"] and bars["chorus"]

    def high_band_energy(audio: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(audio[:, 0]))
        return float(np.mean(spec[len(spec) // 10 :] ** 2))  # above ~2.2 kHz

    for stem in ("drums", "other"):
        per_kind = {
            kind: np.mean([high_band_energy(stems[stem][b * bar : (b + 1) * bar]) for b in idx])
            for kind, idx in bars.items()
        }
        assert per_kind["chorus"] > 1.5 * per_kind["verse"], (stem, per_kind)


def test_same_seed_same_bytes_other_seed_differs_and_nj_irrelevant(tmp_path):
    opts = {"num_train": 1, "num_test": 1, "num_valid": 0, "min_duration": 1.0, "max_duration": 1.5}
    synth.make_dataset(tmp_path / "a", seed=7, **opts)
    synth.make_dataset(tmp_path / "b", seed=7, nj=2, **opts)
    synth.make_dataset(tmp_path / "c", seed=8, **opts)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.wav"))
    assert files_a == files_b and len(files_a) == 10
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    mix_a = sf.read(str(track_dirs(tmp_path / "a")[0] / "mixture.wav"))[0]
    mix_c = sf.read(str(track_dirs(tmp_path / "c")[0] / "mixture.wav"))[0]
    n = min(len(mix_a), len(mix_c))
    assert np.abs(mix_a[:n] - mix_c[:n]).max() > 0.01


def test_existing_output_is_kept_or_refused(tmp_path, small_set):
    before = (small_set / "manifest.json").stat().st_mtime_ns
    assert synth.make_dataset(small_set, seed=3, **SMALL) == "exists"
    assert (small_set / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(synth.UserError, match="other options"):
        synth.make_dataset(small_set, seed=4, **SMALL)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    with pytest.raises(synth.UserError, match="not a synthetic MUSDB set"):
        synth.make_dataset(foreign, seed=3, **SMALL)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-train", "2", "--num-valid", "2"], "--num-valid must be in"),
        (["--min-duration", "5", "--max-duration", "4"], "--min-duration <= --max-duration"),
        (["--num-test", "0"], "at least 1"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    assert synth.main(["--out", str(tmp_path / "o"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("make_synthetic_musdb.py: error: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()
