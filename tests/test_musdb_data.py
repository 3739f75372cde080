"""Recipe data preparation: local/prepare_musdb.py, local/data.sh and local/stems.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "musdb18hq" / "enh1"
LOCAL = RECIPE / "local"
sys.path.insert(0, str(LOCAL))

import make_synthetic_musdb as synth  # noqa: E402
import prepare_musdb as prep  # noqa: E402
from stems import STEMS, VALIDATION_TRACKS  # noqa: E402

SPLITS = ("train", "valid", "test")
DATA_FILES = ("wav.scp", "spk1.scp", "spk2.scp", "spk3.scp", "spk4.scp", "utt2spk", "spk2utt")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("musdb") / "synthetic musdb"  # a space in the root, too
    synth.make_dataset(root, 3, 1, 1, 1.0, 1.5, seed=11)
    return root


@pytest.fixture
def root_copy(synthetic_root, tmp_path) -> Path:
    """A private copy of the synthetic set that a test may damage."""
    copy = tmp_path / "musdb"
    shutil.copytree(synthetic_root, copy)
    return copy


def read_kaldi(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]


def write_tiny_track(folder: Path, frames: int = 64, channels: int = 2) -> None:
    folder.mkdir(parents=True)
    audio = np.zeros((frames, channels))
    for name in ("mixture", *STEMS):
        sf.write(str(folder / f"{name}.wav"), audio, 44100, subtype="PCM_16")


def test_stem_order_and_validation_list_match_musdb_package():
    assert STEMS == ("vocals", "drums", "bass", "other")
    import musdb

    config = yaml.safe_load((Path(musdb.__file__).parent / "configs" / "mus.yaml").read_text())
    assert len(VALIDATION_TRACKS) == 14
    assert sorted(VALIDATION_TRACKS) == sorted(config["validation_tracks"])


@pytest.mark.parametrize(
    ("name", "uttid"),
    [
        ("Actions - One Minute Smile", "Actions_-_One_Minute_Smile"),
        ("Johnny Lokke - Promises & Lies", "Johnny_Lokke_-_Promises_Lies"),
        ("Juliet's Rescue - Heartbeats", "Juliet_s_Rescue_-_Heartbeats"),
        ("The Easton Ellises (Baumi) - SDRNR", "The_Easton_Ellises_Baumi_-_SDRNR"),
        ("M.E.R.C. Music - Knockout", "M.E.R.C._Music_-_Knockout"),
    ],
)
def test_uttids_are_safe_and_readable(name, uttid):
    assert prep.make_uttid(name) == uttid


def test_prepare_writes_kaldi_dirs(synthetic_root, tmp_path):
    data = tmp_path / "data"
    valid_list = synthetic_root / "valid_tracks.txt"
    splits = prep.prepare(synthetic_root, data, valid_list)
    valid_names = valid_list.read_text().splitlines()
    assert [t.name for t in splits["valid"]] == valid_names
    assert len(splits["train"]) == 2 and len(splits["test"]) == 1
    assert sorted(p.name for p in data.iterdir()) == sorted(SPLITS)  # no leftovers
    for split in SPLITS:
        folder = data / split
        wav = read_kaldi(folder / "wav.scp")
        ids = [k for k, _ in wav]
        assert ids == sorted(ids) and len(ids) == len(splits[split])
        assert all(" " not in i for i in ids)
        assert all(Path(p).is_absolute() and p.endswith("/mixture.wav") for _, p in wav)
        for i, stem in enumerate(STEMS):
            scp = read_kaldi(folder / f"spk{i + 1}.scp")
            assert [k for k, _ in scp] == ids
            for (_, mix_path), (_, stem_path) in zip(wav, scp):
                assert stem_path == str(Path(mix_path).parent / f"{stem}.wav")
        assert read_kaldi(folder / "utt2spk") == [(i, i) for i in ids]
        assert read_kaldi(folder / "spk2utt") == [(i, i) for i in ids]
        assert (folder / "stems").read_text().split() == list(STEMS)
        for uttid, dur in read_kaldi(folder / "utt2dur"):
            mix_path = dict(wav)[uttid]
            assert float(dur) == pytest.approx(sf.info(mix_path).duration, abs=1e-4)
    train_paths = {p for _, p in read_kaldi(data / "train" / "wav.scp")}
    assert not any(Path(p).parent.name in valid_names for p in train_paths)


def test_paths_with_spaces_read_by_espnet(synthetic_root, tmp_path):
    from espnet2.fileio.read_text import read_2columns_text
    from espnet2.fileio.sound_scp import SoundScpReader

    data = tmp_path / "data"
    prep.prepare(synthetic_root, data, synthetic_root / "valid_tracks.txt")
    scp = data / "train" / "spk1.scp"
    ours = dict(read_kaldi(scp))
    assert all(" " in path for path in ours.values())
    assert read_2columns_text(scp) == ours
    reader = SoundScpReader(str(scp), dtype="float64", always_2d=True)
    for uttid, path in ours.items():
        rate, audio = reader[uttid]
        expected, expected_rate = sf.read(path, always_2d=True)
        assert rate == expected_rate == 44100
        np.testing.assert_array_equal(audio, expected)


def test_default_validation_split_uses_the_14_musdb_tracks(tmp_path):
    root = tmp_path / "musdb18hq"
    for name in (*VALIDATION_TRACKS, "A Train Track - One", "Another Track - Two"):
        write_tiny_track(root / "train" / name)
    write_tiny_track(root / "test" / "Some Test - Track")
    splits = prep.prepare(root, tmp_path / "data")
    assert sorted(t.name for t in splits["valid"]) == sorted(VALIDATION_TRACKS)
    assert [t.name for t in splits["train"]] == ["A Train Track - One", "Another Track - Two"]
    valid_ids = [k for k, _ in read_kaldi(tmp_path / "data" / "valid" / "wav.scp")]
    assert "Johnny_Lokke_-_Promises_Lies" in valid_ids and len(valid_ids) == 14


def assert_failed_cleanly(data: Path, before: dict[str, bytes] | None) -> None:
    """After an error the data dir is as before (absent, or byte-identical) with no temp dirs."""
    if before is None:
        assert not data.exists()
    else:
        after = {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}
        assert after == before
        assert sorted(p.name for p in data.iterdir()) == sorted(SPLITS)


def snapshot(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def run_cli(capsys, *argv) -> str:
    assert prep.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("prepare_musdb.py: error: ") and err.count("\n") == 1
    return err


def test_missing_root(tmp_path, capsys):
    err = run_cli(capsys, "--musdb-root", tmp_path / "nowhere", "--data-dir", tmp_path / "data")
    assert f"MUSDB18-HQ root not found: {tmp_path / 'nowhere'}" in err
    assert "MUSDB18HQ=" in err and "db.sh" in err
    assert_failed_cleanly(tmp_path / "data", None)


def test_missing_stem(root_copy, tmp_path, capsys):
    track = sorted((root_copy / "train").iterdir())[1]
    (track / "bass.wav").unlink()
    data = tmp_path / "data"
    err = run_cli(
        capsys,
        "--musdb-root",
        root_copy,
        "--data-dir",
        data,
        "--valid-list",
        root_copy / "valid_tracks.txt",
    )
    assert f"track '{track.name}' has no bass.wav" in err
    assert_failed_cleanly(data, None)


def test_wrong_length_stem_keeps_previous_data_dir(root_copy, tmp_path, capsys):
    data = tmp_path / "data"
    prep.prepare(root_copy, data, root_copy / "valid_tracks.txt")
    before = snapshot(data)
    track = sorted((root_copy / "test").iterdir())[0]
    audio, rate = sf.read(str(track / "drums.wav"))
    sf.write(str(track / "drums.wav"), audio[:-100], rate, subtype="PCM_16")
    err = run_cli(
        capsys,
        "--musdb-root",
        root_copy,
        "--data-dir",
        data,
        "--valid-list",
        root_copy / "valid_tracks.txt",
    )
    n = len(audio)
    assert f"track '{track.name}': drums.wav has (frames, channels) = ({n - 100}, 2)" in err
    assert f"but mixture.wav has ({n}, 2)" in err
    assert_failed_cleanly(data, before)


def test_wrong_channel_count_stem(root_copy, tmp_path, capsys):
    track = sorted((root_copy / "train").iterdir())[0]
    audio, rate = sf.read(str(track / "other.wav"))
    sf.write(str(track / "other.wav"), audio[:, 0], rate, subtype="PCM_16")
    err = run_cli(
        capsys,
        "--musdb-root",
        root_copy,
        "--data-dir",
        tmp_path / "data",
        "--valid-list",
        root_copy / "valid_tracks.txt",
    )
    n = len(audio)
    assert f"track '{track.name}': other.wav has (frames, channels) = ({n}, 1)" in err
    assert f"but mixture.wav has ({n}, 2)" in err
    assert_failed_cleanly(tmp_path / "data", None)


def test_unknown_validation_track(synthetic_root, tmp_path, capsys):
    valid = tmp_path / "valid.txt"
    valid.write_text("# comment\nNo Such - Track\n\n")
    err = run_cli(
        capsys,
        "--musdb_root",
        synthetic_root,
        "--data_dir",
        tmp_path / "data",
        "--valid_list",
        valid,
    )
    assert str(valid) in err and "No Such - Track" in err
    assert_failed_cleanly(tmp_path / "data", None)


def test_standard_split_on_synthetic_set_fails_with_hint(synthetic_root, tmp_path, capsys):
    err = run_cli(capsys, "--musdb-root", synthetic_root, "--data-dir", tmp_path / "data")
    assert "14 validation track(s) not among the training tracks" in err
    assert "--valid_list" in err


def make_stem_mp4(path: Path, seconds: float = 1.0) -> dict[str, float]:
    """Write a 5-stream .stem.mp4 (MUSDB order) of sines; returns stem -> frequency."""
    import stempeg

    freqs = {"mixture": 220.0, "drums": 440.0, "bass": 880.0, "other": 1760.0, "vocals": 3520.0}
    t = np.arange(int(seconds * 44100)) / 44100
    streams = np.zeros((5, len(t), 2), dtype=np.float32)
    for stem, index in prep.STEM_MP4_STREAMS.items():
        streams[index] = 0.3 * np.sin(2 * np.pi * freqs[stem] * t)[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    stempeg.write_stems(str(path), streams, sample_rate=44100, writer=stempeg.StreamsWriter())
    return freqs


def test_stem_mp4_is_decoded_to_hq_layout(tmp_path):
    root = tmp_path / "musdb18"
    freqs = make_stem_mp4(root / "train" / "Train Song - A.stem.mp4")
    make_stem_mp4(root / "test" / "Test Song - B.stem.mp4")
    valid = tmp_path / "valid.txt"
    valid.write_text("")
    decoded = tmp_path / "decoded"
    prep.prepare(root, tmp_path / "data", valid, audio_format="stem_mp4", decode_dir=decoded)
    folder = decoded / "train" / "Train Song - A"
    for stem, freq in freqs.items():
        audio, rate = sf.read(str(folder / f"{stem}.wav"))
        assert rate == 44100 and audio.shape[1] == 2
        spectrum = np.abs(np.fft.rfft(audio[:, 0]))
        assert np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)] == pytest.approx(
            freq, abs=3.0
        )
    ((uttid, mix_path),) = read_kaldi(tmp_path / "data" / "test" / "wav.scp")
    assert uttid == "Test_Song_-_B" and Path(mix_path).parent.parent == (decoded / "test").resolve()
    # a second run finds the decoded tracks and does not decode again
    before = (folder / "vocals.wav").stat().st_mtime_ns
    prep.prepare(root, tmp_path / "data", valid, audio_format="stem_mp4", decode_dir=decoded)
    assert (folder / "vocals.wav").stat().st_mtime_ns == before


def test_stem_mp4_needs_decode_dir(tmp_path):
    with pytest.raises(prep.DataError, match="--decode_dir"):
        prep.prepare(tmp_path, tmp_path / "data", audio_format="stem_mp4")


def run_data_sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MUSDB18HQ", None)
    env["SYNTHETIC_MUSDB"] = str(cwd / "synthetic_musdb")
    return subprocess.run(
        ["bash", str(LOCAL / "data.sh"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_data_sh_synthetic_end_to_end(tmp_path):
    # the generator's options, given directly and through --synthetic_opts
    args = ("--synthetic", "true", "--num_train", "2", "--num_test", "1", "--num_valid", "1")
    args += ("--synthetic_opts", "--min-duration 1 --max-duration 1.5")
    proc = run_data_sh(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "synthetic_musdb" / "manifest.json").read_text())
    assert manifest["options"]["num_train"] == 2 and manifest["options"]["max_duration"] == 1.5
    for split in SPLITS:
        for name in DATA_FILES:
            assert (tmp_path / "data" / split / name).is_file()
    assert len((tmp_path / "data" / "valid" / "wav.scp").read_text().splitlines()) == 1
    again = run_data_sh(tmp_path, *args)
    assert again.returncode == 0 and "kept it" in again.stdout


def test_data_sh_errors(tmp_path):
    proc = run_data_sh(tmp_path, "--musdb_root", str(tmp_path / "missing"))
    assert proc.returncode != 0
    assert f"MUSDB18-HQ root not found: {tmp_path / 'missing'}" in proc.stderr
    assert not (tmp_path / "data").exists()
    proc = run_data_sh(tmp_path, "--synthetic", "maybe")
    assert proc.returncode == 1 and "--synthetic must be true or false" in proc.stderr
    proc = run_data_sh(tmp_path, "--bogus", "1")
    assert proc.returncode == 1 and "unknown option '--bogus'" in proc.stderr
