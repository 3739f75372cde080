"""Scoring of separated stems: egs2/musdb18hq/enh1/local/score_musdb.py."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

LOCAL = Path(__file__).resolve().parents[1] / "egs2" / "musdb18hq" / "enh1" / "local"
sys.path.insert(0, str(LOCAL))

import score_musdb as score  # noqa: E402
from stems import STEMS  # noqa: E402

RATE = 44100


def make_set(
    root: Path,
    n_tracks: int,
    channels: int,
    seconds: float,
    seed: int = 0,
    silent_vocals_s: float = 0.0,
) -> tuple[Path, Path, dict]:
    """Reference data dir + estimate scp dir; returns (ref_dir, est_scp_dir, arrays).

    Stems are different coloured noises and tones; the estimate of stem j is the reference
    plus noise plus some leakage of the next stem. arrays[uttid] = (refs [S, L, C], ests, mix).
    """
    rng = np.random.default_rng(seed)
    ref_dir, est_dir = root / "data" / "test", root / "exp" / "enhanced_test"
    ref_dir.mkdir(parents=True)
    length = int(seconds * RATE)
    t = np.arange(length) / RATE
    rows = {"wav.scp": [], **{f"spk{i + 1}.scp": [] for i in range(4)}}
    est_rows = {f"spk{i + 1}.scp": [] for i in range(4)}
    arrays = {}
    for k in range(n_tracks):
        uttid = f"Track_{k}_-_Song"
        folder = root / "musdb" / f"Track {k} - Song"  # spaces in the reference paths
        folder.mkdir(parents=True)
        refs = np.zeros((4, length, channels))
        for j in range(4):
            noise = np.cumsum(rng.standard_normal((length, channels)), axis=0) * (0.02 / (j + 1))
            noise -= noise.mean(axis=0)
            refs[j] = 0.1 * np.sin(2 * np.pi * 110 * (j + 1) * t)[:, None] + 0.05 * noise / (
                np.abs(noise).max() + 1e-9
            )
        if silent_vocals_s:
            refs[0, : int(silent_vocals_s * RATE)] = 0.0
        mix = refs.sum(axis=0)
        ests = refs + 0.01 * (np.arange(4)[:, None, None] + 1) * rng.standard_normal(refs.shape)
        ests += 0.1 * np.roll(refs, -1, axis=0)
        sf.write(str(folder / "mixture.wav"), mix, RATE, subtype="DOUBLE")
        rows["wav.scp"].append(f"{uttid} {folder / 'mixture.wav'}")
        for j, stem in enumerate(STEMS):
            sf.write(str(folder / f"{stem}.wav"), refs[j], RATE, subtype="DOUBLE")
            rows[f"spk{j + 1}.scp"].append(f"{uttid} {folder / f'{stem}.wav'}")
            est_path = est_dir / "wavs" / str(j + 1) / f"{uttid}.wav"
            est_path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(est_path), ests[j], RATE, subtype="DOUBLE")
            est_rows[f"spk{j + 1}.scp"].append(f"{uttid} {est_path}")
        arrays[uttid] = (refs, ests, mix)
    for name, lines in rows.items():
        (ref_dir / name).write_text("\n".join(lines) + "\n")
    for name, lines in est_rows.items():
        (est_dir / name).write_text("\n".join(lines) + "\n")
    (ref_dir / "stems").write_text("".join(f"{s}\n" for s in STEMS))
    return ref_dir, est_dir, arrays


def hand_usdr(ref: np.ndarray, est: np.ndarray) -> float:
    num, den = 1e-7, 1e-7
    for r, e in zip(ref.ravel().tolist(), est.ravel().tolist()):
        num += r * r
        den += (r - e) ** 2
    return 10 * math.log10(num / den)


def hand_si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    r, e = ref.ravel(), est.ravel()
    alpha = float(np.sum(r * e)) / (float(np.sum(r * r)) + 1e-7)
    target = alpha * r
    return 10 * math.log10((1e-7 + np.sum(target**2)) / (1e-7 + np.sum((e - target) ** 2)))


def load_tracks(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "tracks").glob("*.json")}


def test_usdr_si_sdr_and_mixture_baseline_match_hand_computation(tmp_path):
    ref_dir, est_dir, arrays = make_set(tmp_path, n_tracks=2, channels=2, seconds=0.5)
    out = tmp_path / "scores"
    summary = score.score(ref_dir, out, est_scp_dir=est_dir, csdr=False)
    tracks = load_tracks(out)
    assert sorted(tracks) == sorted(arrays)
    for uttid, (refs, ests, mix) in arrays.items():
        for j, stem in enumerate(STEMS):
            entry = tracks[uttid]["stems"][stem]
            assert entry["model"]["uSDR"] == pytest.approx(hand_usdr(refs[j], ests[j]), abs=1e-9)
            assert entry["mixture"]["uSDR"] == pytest.approx(hand_usdr(refs[j], mix), abs=1e-9)
            assert entry["model"]["SI-SDR"] == pytest.approx(hand_si_sdr(refs[j], ests[j]))
            assert entry["mixture"]["SI-SDR"] == pytest.approx(hand_si_sdr(refs[j], mix))
            assert "cSDR" not in entry["model"]
    for j, stem in enumerate(STEMS):
        per_stem = summary["per_stem"][stem]
        model = np.mean([hand_usdr(a[0][j], a[1][j]) for a in arrays.values()])
        mixture = np.mean([hand_usdr(a[0][j], a[2]) for a in arrays.values()])
        assert per_stem["model"]["uSDR"] == pytest.approx(model)
        assert per_stem["mixture"]["uSDR"] == pytest.approx(mixture)
        assert per_stem["improvement"]["uSDR"] == pytest.approx(model - mixture)
        assert per_stem["improvement"]["uSDR"] > 5  # the estimates are much better than the mix
    mean = summary["mean_over_stems"]["model"]["uSDR"]
    assert mean == pytest.approx(np.mean([summary["per_stem"][s]["model"]["uSDR"] for s in STEMS]))


def test_si_sdr_ignores_gain_but_usdr_does_not():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((1000, 2))
    est = ref + 0.1 * rng.standard_normal((1000, 2))
    assert score.si_sdr(ref, 0.5 * est) == pytest.approx(score.si_sdr(ref, est), abs=1e-6)
    assert score.usdr(ref, 0.5 * est) < score.usdr(ref, est) - 3


@pytest.mark.slow
def test_csdr_agrees_with_museval_on_the_same_files(tmp_path):
    import museval

    # mono keeps museval fast; 1.2 s of silent vocals makes museval return NaN frames
    ref_dir, est_dir, arrays = make_set(tmp_path, 2, 1, 3.0, seed=2, silent_vocals_s=1.2)
    out = tmp_path / "scores"
    summary = score.score(ref_dir, out, est_scp_dir=est_dir)
    tracks = load_tracks(out)
    per_track = {stem: {"model": [], "mixture": []} for stem in STEMS}
    saw_nan_frame = False
    for uttid in arrays:
        refs = read_stems(ref_dir, uttid)
        ests = read_stems(est_dir, uttid)
        mix = sf.read(scp_entry(ref_dir / "wav.scp", uttid), always_2d=True)[0]
        for system, estimate in (("model", ests), ("mixture", np.stack([mix] * 4))):
            sdr, isr, sir, sar = museval.evaluate(refs, estimate, win=RATE, hop=RATE)
            saw_nan_frame |= bool(np.isnan(sdr).any())
            for j, stem in enumerate(STEMS):
                got = tracks[uttid]["stems"][stem][system]
                assert got["cSDR"] == pytest.approx(np.nanmedian(sdr[j]), abs=1e-6)
                assert got["ISR"] == pytest.approx(np.nanmedian(isr[j]), abs=1e-6)
                assert got["SIR"] == pytest.approx(np.nanmedian(sir[j]), abs=1e-6)
                assert got["SAR"] == pytest.approx(np.nanmedian(sar[j]), abs=1e-6)
                per_track[stem][system].append(np.nanmedian(sdr[j]))
            if system == "model":
                frames = tracks[uttid]["stems"]["vocals"]["frames"]["SDR"]
                expected = [None if np.isnan(v) else pytest.approx(v, abs=1e-6) for v in sdr[0]]
                assert frames == expected
    assert saw_nan_frame
    for stem in STEMS:
        for system in ("model", "mixture"):
            expected = np.median(per_track[stem][system])  # median over tracks
            assert summary["per_stem"][stem][system]["cSDR"] == pytest.approx(expected, abs=1e-6)
        assert summary["per_stem"][stem]["improvement"]["cSDR"] > 3


def scp_entry(scp: Path, uttid: str) -> str:
    return dict(line.split(" ", 1) for line in scp.read_text().splitlines())[uttid]


def read_stems(scp_dir: Path, uttid: str) -> np.ndarray:
    """The four stems of ``uttid`` listed in ``scp_dir/spk{1..4}.scp``: [S, L, C]."""
    paths = [scp_entry(scp_dir / f"spk{j + 1}.scp", uttid) for j in range(4)]
    return np.stack([sf.read(p, always_2d=True)[0] for p in paths])


def test_perfect_estimate_scores_very_high(tmp_path):
    ref_dir, _, arrays = make_set(tmp_path, 1, 1, 2.0, seed=3)
    est_dir = tmp_path / "perfect"
    est_dir.mkdir()
    for j in range(4):
        (est_dir / f"spk{j + 1}.scp").write_text((ref_dir / f"spk{j + 1}.scp").read_text())
    summary = score.score(ref_dir, tmp_path / "scores", est_scp_dir=est_dir)
    for stem in STEMS:
        model = summary["per_stem"][stem]["model"]
        assert model["uSDR"] > 60 and model["SI-SDR"] > 60 and model["cSDR"] > 100
        assert summary["per_stem"][stem]["mixture"]["cSDR"] < 10


def test_outputs_written_and_rerun_replaces_them(tmp_path):
    ref_dir, est_dir, arrays = make_set(tmp_path, 3, 2, 0.3, seed=4)
    out = tmp_path / "scores"
    assert (
        score.main(
            [
                "--ref-dir",
                str(ref_dir),
                "--est-scp-dir",
                str(est_dir),
                "--out-dir",
                str(out),
                "--no-csdr",
                "--name",
                "demo_test",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["num_tracks"] == 3
    assert results["stems"] == {"spk1": "vocals", "spk2": "drums", "spk3": "bass", "spk4": "other"}
    md = (out / "RESULTS.md").read_text()
    assert "## demo_test" in md
    assert "stem order: spk1=vocals, spk2=drums, spk3=bass, spk4=other" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0] == ("|stem|uSDR|SI-SDR|uSDR mix|SI-SDR mix|uSDR imp|SI-SDR imp|")
    labels = [row.split("|")[1] for row in table[2:]]
    assert labels == ["vocals (spk1)", "drums (spk2)", "bass (spk3)", "other (spk4)", "mean"]
    vocals_usdr = float(table[2].split("|")[2])
    assert vocals_usdr == pytest.approx(results["per_stem"]["vocals"]["model"]["uSDR"], abs=0.005)
    assert sorted(p.name for p in (out / "tracks").iterdir()) == sorted(f"{u}.json" for u in arrays)
    # re-run on a reference set with one track fewer: the old per-track file disappears
    wav = (ref_dir / "wav.scp").read_text().splitlines()
    (ref_dir / "wav.scp").write_text("\n".join(wav[1:]) + "\n")
    score.score(ref_dir, out, est_scp_dir=est_dir, csdr=False)
    assert sorted(p.name for p in (out / "tracks").iterdir()) == sorted(
        f"{line.split()[0]}.json" for line in wav[1:]
    )
    assert json.loads((out / "results.json").read_text())["num_tracks"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md", "results.json", "tracks"]


def test_est_dir_layout_and_parallel_jobs_give_the_same_scores(tmp_path):
    ref_dir, est_dir, arrays = make_set(tmp_path, 2, 2, 0.3, seed=5)
    per_utt = tmp_path / "separated"
    for j, stem in enumerate(STEMS):
        for line in (est_dir / f"spk{j + 1}.scp").read_text().splitlines():
            uttid, path = line.split(" ", 1)
            (per_utt / uttid).mkdir(parents=True, exist_ok=True)
            (per_utt / uttid / f"{stem}.wav").write_bytes(Path(path).read_bytes())
    a = score.score(ref_dir, tmp_path / "a", est_scp_dir=est_dir, csdr=False)
    b = score.score(ref_dir, tmp_path / "b", est_dir=per_utt, csdr=False, nj=2)
    assert a == b


def test_scp_reader_agrees_with_espnet(tmp_path):
    from espnet2.fileio.read_text import read_2columns_text

    scp = tmp_path / "x.scp"
    scp.write_text("a /p/with space/m.wav\nb\t/q.wav  \nc /r s/t u.wav\n")
    assert score.read_scp(scp) == read_2columns_text(scp)


def run_cli(capsys, *argv) -> str:
    assert score.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("score_musdb.py: error: ") and err.count("\n") == 1
    return err


def test_errors_name_the_file_and_the_problem(tmp_path, capsys):
    ref_dir, est_dir, arrays = make_set(tmp_path, 2, 2, 0.3, seed=6)
    out = tmp_path / "scores"
    base = ("--ref-dir", ref_dir, "--est-scp-dir", est_dir, "--out-dir", out, "--no-csdr")
    # an utterance missing from an estimate scp
    spk3 = est_dir / "spk3.scp"
    lines = spk3.read_text().splitlines()
    spk3.write_text(lines[1] + "\n")
    missing = lines[0].split(" ", 1)[0]
    err = run_cli(capsys, *base)
    assert f"{spk3}: no entry for '{missing}'" in err
    spk3.write_text("\n".join(lines) + "\n")
    # an estimate of the wrong length
    uttid, path = (est_dir / "spk2.scp").read_text().splitlines()[0].split(" ", 1)
    audio, _ = sf.read(path)
    sf.write(path, audio[:-10], RATE, subtype="DOUBLE")
    err = run_cli(capsys, *base)
    n = audio.shape[0]
    assert f"{path}: estimate 'drums' of '{uttid}' has (samples, channels) = ({n - 10}, 2)" in err
    assert f"the mixture has ({n}, 2)" in err
    # a reference dir whose stem order differs
    (ref_dir / "stems").write_text("drums\nvocals\nbass\nother\n")
    err = run_cli(capsys, *base)
    assert "stem order" in err and str(ref_dir / "stems") in err
    # a missing estimates folder
    err = run_cli(capsys, "--ref-dir", ref_dir, "--est-dir", tmp_path / "nope", "--out-dir", out)
    assert f"{tmp_path / 'nope'}: estimates folder not found" in err
    assert not out.exists()  # nothing written by failed runs


@pytest.mark.slow
def test_stereo_synthetic_track_end_to_end(tmp_path):
    import make_synthetic_musdb as synth
    import prepare_musdb as prep

    root = tmp_path / "musdb"
    synth.make_dataset(root, 1, 1, 0, 3.0, 3.0, seed=5)
    valid = tmp_path / "valid.txt"
    valid.write_text("")
    prep.prepare(root, tmp_path / "data", valid)
    test_dir = tmp_path / "data" / "test"
    # a crude "separation": each stem estimated as a quarter of the mixture plus the true stem
    est_dir = tmp_path / "est"
    est_dir.mkdir()
    (mix_line,) = (test_dir / "wav.scp").read_text().splitlines()
    uttid, mix_path = mix_line.split(" ", 1)
    mix, rate = sf.read(mix_path)
    for j, stem in enumerate(STEMS):
        ref, _ = sf.read(str(Path(mix_path).parent / f"{stem}.wav"))
        path = est_dir / f"{stem}.wav"
        sf.write(str(path), 0.5 * ref + 0.125 * mix, rate, subtype="FLOAT")
        (est_dir / f"spk{j + 1}.scp").write_text(f"{uttid} {path}\n")
    summary = score.score(test_dir, tmp_path / "scores", est_scp_dir=est_dir)
    for stem in STEMS:
        values = summary["per_stem"][stem]
        for system in ("model", "mixture", "improvement"):
            assert all(math.isfinite(v) for v in values[system].values()), (stem, system)
        assert values["improvement"]["cSDR"] > 0
    md = (tmp_path / "scores" / "RESULTS.md").read_text()
    assert "|cSDR|uSDR|SI-SDR|" in md and "nan" not in md
