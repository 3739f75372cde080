"""Separation of whole files: the Separator API, the CLI and the recipe's separate.py.

Models are built here with random weights and saved as an ESPnet experiment directory
(config.yaml + valid.loss.ave_3best.pth with ``separator.``-prefixed keys), exactly what an
ESPnet training run leaves behind. Exact-value checks use ``GainModel``, a separator that
scales the mixture spectrum by a fixed gain per stem: whatever the chunking, shifting or
resampling, its stems must come out as ``gain * mixture``.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from standalone import BSLocoformerSeparator, TFLocoformerSeparator, api
from standalone.api import Separator, output_stem_names
from standalone.audio_io import AudioError
from standalone.checkpoint import load_separator
from standalone.separate import collect_inputs, main

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE_CLI = REPO_ROOT / "egs2" / "musdb18hq" / "enh1" / "separate.py"
STEMS = ["vocals", "drums", "bass", "other"]
TINY_BLOCKS = dict(n_layers=1, emb_dim=16, num_groups=4, n_heads=2, attention_dim=16)
TINY_BS = dict(
    num_spk=4, sample_rate=44100, stft_size=256, stereo=True, **TINY_BLOCKS, ffn_hidden_dim=[24, 24]
)
TINY_TF = dict(num_spk=2, num_channels=1, **TINY_BLOCKS, ffn_hidden_dim=[24, 24])


def write_experiment(
    root: Path,
    separator: str,
    conf: dict,
    n_fft: int,
    hop: int,
    model_conf: dict | None = None,
    stem_names=None,
    seed: int = 0,
) -> Path:
    """An ESPnet enhancement experiment folder for a freshly initialised network."""
    torch.manual_seed(seed)
    net = {"bslocoformer": BSLocoformerSeparator, "tflocoformer": TFLocoformerSeparator}
    model = net[separator](**conf)
    root.mkdir(parents=True, exist_ok=True)
    state = {f"separator.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, root / "valid.loss.ave_3best.pth")
    sep_conf = dict(conf)
    if stem_names is not None:
        sep_conf["stem_names"] = stem_names
    config = {
        "output_dir": str(root),
        "optim": "adam",
        "optim_conf": {"lr": 0.001},
        "encoder": "stft",
        "encoder_conf": {"n_fft": n_fft, "hop_length": hop},
        "decoder": "stft",
        "decoder_conf": {"n_fft": n_fft, "hop_length": hop},
        "separator": separator,
        "separator_conf": sep_conf,
        "model_conf": model_conf or {},
        "criterions": [{"name": "snr", "conf": {"eps": 1e-7}, "wrapper": "pit"}],
    }
    with open(root / "config.yaml", "w") as f:
        yaml.safe_dump(config, f)
    return root


@pytest.fixture(scope="module")
def music_exp(tmp_path_factory) -> Path:
    """Stereo 44.1 kHz BS-Locoformer with four named stems and variance normalisation."""
    root = tmp_path_factory.mktemp("exp") / "enh_train_enh_bslocoformer_raw"
    return write_experiment(
        root, "bslocoformer", TINY_BS, 256, 64, {"normalize_variance": True}, STEMS
    )


@pytest.fixture(scope="module")
def music(music_exp) -> Separator:
    return Separator.from_pretrained(music_exp, segment=1.0)


@pytest.fixture(scope="module")
def speech_exp(tmp_path_factory) -> Path:
    """Mono TF-Locoformer (no stem names, no sample rate in the config, like the published ones)."""
    root = tmp_path_factory.mktemp("exp") / "speech"
    return write_experiment(root, "tflocoformer", TINY_TF, 128, 32)


class GainModel(torch.nn.Module):
    """Separator stand-in: stem n = gains[n] * mixture, for ``[B, M, T, F]`` complex input."""

    def __init__(self, gains, num_channels: int):
        super().__init__()
        self.register_buffer("gains", torch.tensor(gains, dtype=torch.float32))
        self.num_spk = len(gains)
        self.num_channels = num_channels
        self.calls = 0

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert spec.shape[1] == self.num_channels
        return spec[:, None] * self.gains[None, :, None, None, None]


GAINS = [0.1, 0.2, 0.3, 0.4]


def gain_separator(channels=2, fs=44100, gains=GAINS, **kwargs) -> Separator:
    info = {
        "separator": "gain",
        "stem_names": STEMS[: len(gains)],
        "fs": fs,
        "num_channels": channels,
        "n_fft": 256,
        "hop_length": 64,
        "win_length": 256,
        "window": "hann",
        "normalize_variance": True,
        "normalize_variance_per_ch": False,
    }
    return Separator(GainModel(gains, channels), info, **kwargs)


def band_limited_noise(channels: int, length: int, seed: int = 0, fraction: float = 0.3):
    """``[C, L]`` noise with no content above ``fraction`` of Nyquist (survives resampling)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(channels, length, generator=gen, dtype=torch.float64)
    spec = torch.fft.rfft(x)
    spec[..., int(spec.shape[-1] * fraction) :] = 0
    x = torch.fft.irfft(spec, n=length)
    return (0.2 * x / x.abs().max()).float()


def write_song(path: Path, channels=2, seconds=1.5, sr=44100, seed=0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = band_limited_noise(channels, int(seconds * sr), seed).numpy().T
    subtype = {".wav": "FLOAT", ".flac": "PCM_24"}.get(path.suffix)
    sf.write(path, data, sr, subtype=subtype)
    return data


def run_cli(*args) -> int:
    return main([str(a) for a in args])


# --------------------------------------------------------------------------------------- API
def test_from_pretrained_reads_names_rate_and_channels(music, speech_exp):
    assert music.stem_names == STEMS
    assert music.sample_rate == 44100 and music.num_channels == 2
    speech = Separator.from_pretrained(speech_exp)
    assert speech.stem_names == ["spk1", "spk2"]
    assert speech.sample_rate is None and speech.num_channels == 1


def test_auto_segment_is_the_training_segment(tmp_path):
    root = write_experiment(tmp_path / "e", "bslocoformer", TINY_BS, 256, 64, stem_names=STEMS)
    assert Separator.from_pretrained(root).segment == api.FALLBACK_SEGMENT  # config has none
    conf = yaml.safe_load((root / "config.yaml").read_text())
    conf["chunk_length"] = "22050-66150"  # the chunk iterator's range form: the longest counts
    (root / "config.yaml").write_text(yaml.safe_dump(conf))
    assert Separator.from_pretrained(root).segment == 1.5
    assert Separator.from_pretrained(root, segment=0.7).segment == 0.7
    assert Separator.from_pretrained(root, segment=None).segment is None
    with pytest.raises(ValueError, match="'auto' or None, got 'whole'"):
        Separator.from_pretrained(root, segment="whole")
    assert [api.parse_segment(t) for t in ("auto", "AUTO", "2.5", "0")] == [
        "auto",
        "auto",
        2.5,
        None,
    ]


def test_call_returns_input_rate_length_and_channels(music):
    wav = band_limited_noise(2, 12000)
    stems = music(wav, 44100)
    assert list(stems) == STEMS
    for out in stems.values():
        assert out.shape == (2, 12000) and out.dtype == torch.float32
        assert torch.isfinite(out).all() and float(out.abs().max()) > 0
    # numpy input, and the same call gives the same result
    again = music(wav.numpy(), 44100)
    for name in STEMS:
        torch.testing.assert_close(again[name], stems[name])
        assert not again[name].is_inference()
    again["vocals"].mul_(2.0)  # ordinary tensors: the caller may edit them in place


def test_mono_input_to_stereo_model_gives_mono_stems(music):
    mono = band_limited_noise(1, 10000)
    stems = music(mono[0], 44100)  # a 1-D waveform is one channel
    assert all(s.shape == (1, 10000) for s in stems.values())
    dual = music(mono.expand(2, -1), 44100)
    for name in STEMS:  # the duplicated-channel result, averaged back to one channel
        torch.testing.assert_close(stems[name], dual[name].mean(0, keepdim=True))


def test_stereo_input_to_mono_model_separates_each_channel(speech_exp):
    speech = Separator.from_pretrained(speech_exp, segment=None)
    wav = band_limited_noise(2, 6000, seed=5)
    both = speech(wav, 16000)
    left, right = speech(wav[:1], 16000), speech(wav[1:], 16000)
    for name in ("spk1", "spk2"):
        assert both[name].shape == (2, 6000)
        torch.testing.assert_close(both[name][:1], left[name], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(both[name][1:], right[name], rtol=1e-4, atol=1e-6)


def test_more_than_two_channels_needs_downmix(music):
    wav = band_limited_noise(4, 8000)
    with pytest.raises(ValueError, match="audio has 4 channels; the model takes 2.*downmix"):
        music(wav, 44100)
    stems = music(wav, 44100, downmix=True)
    assert all(s.shape == (2, 8000) for s in stems.values())
    expected = music(torch.stack([wav[0::2].mean(0), wav[1::2].mean(0)]), 44100)
    for name in STEMS:  # channel m is the mean of channels m, m + 2, ...
        torch.testing.assert_close(stems[name], expected[name])


def test_gain_model_gives_exact_stems_through_chunks_and_batches():
    wav = band_limited_noise(2, 44100 * 2, seed=1)
    for segment, overlap, batch in [(None, 0.25, 1), (0.3, 0.25, 1), (0.25, 0.5, 3), (0.2, 0.0, 2)]:
        sep = gain_separator(segment=segment, overlap=overlap, batch_size=batch)
        stems = sep(wav, 44100)
        for gain, name in zip(GAINS, STEMS):
            torch.testing.assert_close(stems[name], gain * wav, atol=2e-6, rtol=1e-5)
    assert sep.model.calls == 5  # last run: 10 chunks of 8820 samples, 2 per call


def test_chunked_equals_one_pass_when_the_segment_covers_the_input(music_exp):
    wav = band_limited_noise(2, 15000, seed=2)
    whole = Separator.from_pretrained(music_exp, segment=None)(wav, 44100)
    long_segment = Separator.from_pretrained(music_exp, segment=0.5, overlap=0.5)(wav, 44100)
    chunked = Separator.from_pretrained(music_exp, segment=0.15, overlap=0.25)(wav, 44100)
    for name in STEMS:
        assert torch.equal(whole[name], long_segment[name])
        assert chunked[name].shape == whole[name].shape
        assert torch.isfinite(chunked[name]).all()
        assert not torch.equal(chunked[name], whole[name])  # chunks did see less context


def test_resampled_input_round_trip_keeps_rate_and_length():
    sep = gain_separator(fs=44100, segment=0.5)
    wav = band_limited_noise(2, 22050 + 7, seed=3)  # 22.05 kHz input, odd length
    stems = sep(wav, 22050)
    for gain, name in zip(GAINS, STEMS):
        assert stems[name].shape == wav.shape
        inner = slice(500, -500)
        torch.testing.assert_close(stems[name][:, inner], gain * wav[:, inner], atol=1e-5, rtol=0)


def test_unknown_model_rate_runs_at_the_input_rate():
    sep = gain_separator(fs=None, segment=None)
    stems = sep(band_limited_noise(2, 8000), 8000)
    assert sep.sample_rate is None and stems["vocals"].shape == (2, 8000)


def test_shifts_are_seedable_and_average_to_the_stems():
    wav = band_limited_noise(2, 30000, seed=4)
    sep = gain_separator(segment=0.2, shifts=3, seed=7)
    stems = sep(wav, 44100)
    torch.testing.assert_close(stems["bass"], 0.3 * wav, atol=2e-6, rtol=1e-5)


def test_shifts_change_a_real_model_reproducibly(music_exp):
    wav = band_limited_noise(2, 4000, seed=4)
    plain = Separator.from_pretrained(music_exp, segment=None)(wav, 44100)
    a = Separator.from_pretrained(music_exp, segment=None, shifts=2, seed=1)(wav, 44100)
    b = Separator.from_pretrained(music_exp, segment=None, shifts=2, seed=1)(wav, 44100)
    c = Separator.from_pretrained(music_exp, segment=None, shifts=2, seed=2)(wav, 44100)
    assert torch.equal(a["vocals"], b["vocals"])
    assert not torch.equal(a["vocals"], c["vocals"])
    assert not torch.equal(a["vocals"], plain["vocals"])


def test_variance_normalisation_makes_the_model_scale_equivariant(music_exp):
    model, info = load_separator(music_exp)
    wav = band_limited_noise(2, 8000, seed=6)
    normed = Separator(model, info, segment=None)
    raw = Separator(model, dict(info, normalize_variance=False), segment=None)
    per_ch = Separator(
        model, dict(info, normalize_variance=False, normalize_variance_per_ch=True), segment=None
    )
    scale = torch.tensor([[3.0], [0.5]])
    base, scaled = normed(wav, 44100), normed(wav * 3.0, 44100)
    base_raw, scaled_raw = raw(wav, 44100), raw(wav * 3.0, 44100)
    base_ch, scaled_ch = per_ch(wav, 44100), per_ch(wav * scale, 44100)
    for name in STEMS:
        torch.testing.assert_close(scaled[name], 3.0 * base[name], rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(scaled_ch[name], scale * base_ch[name], rtol=1e-3, atol=1e-5)
        assert not torch.allclose(scaled_raw[name], 3.0 * base_raw[name], rtol=1e-2, atol=1e-4)


def test_silence_gives_silent_stems_without_running_the_model(music):
    sep = gain_separator()
    stems = sep(torch.zeros(2, 5000), 44100)
    assert sep.model.calls == 0
    assert all(torch.equal(s, torch.zeros(2, 5000)) for s in stems.values())
    stems = music(torch.zeros(2, 5000), 44100)
    assert all(torch.equal(s, torch.zeros(2, 5000)) for s in stems.values())
    quiet = music(torch.full((2, 5000), 1e-12), 44100)  # near silence: no NaN from the std
    assert all(torch.isfinite(s).all() for s in quiet.values())


def test_one_sample_input_works(music):
    stems = music(torch.tensor([[0.3], [-0.2]]), 22050)
    assert all(s.shape == (2, 1) and torch.isfinite(s).all() for s in stems.values())


def test_bad_waveforms_are_rejected(music):
    with pytest.raises(ValueError, match="empty"):
        music(torch.zeros(2, 0), 44100)
    with pytest.raises(ValueError, match="NaN"):
        music(torch.tensor([[0.0, float("nan")]]), 44100)
    with pytest.raises(ValueError, match=r"\[L\] or \[C, L\]"):
        music(torch.zeros(1, 2, 3), 44100)


def test_output_stem_names():
    assert output_stem_names(STEMS) == STEMS
    assert output_stem_names(STEMS, stems=["bass", "vocals", "bass"]) == ["bass", "vocals"]
    assert output_stem_names(STEMS, two_stems="drums") == ["drums", "no_drums"]
    with pytest.raises(ValueError, match="unknown stem.*piano; the model has vocals, drums"):
        output_stem_names(STEMS, stems=["piano"])


def test_separate_file_two_stems_and_skip(tmp_path):
    sep = gain_separator(segment=None)
    song = tmp_path / "song.wav"
    data = write_song(song, seconds=0.5)
    res = sep.separate_file(
        song, tmp_path / "out", two_stems="vocals", sample_format="float32", clip_mode="none"
    )
    assert [p.name for p in res.written] == ["vocals.wav", "no_vocals.wav"]
    rest, _ = sf.read(tmp_path / "out" / "song" / "no_vocals.wav", dtype="float32")
    np.testing.assert_allclose(rest, 0.9 * data, atol=2e-6)
    again = sep.separate_file(song, tmp_path / "out", two_stems="vocals")
    assert again.written == [] and len(again.skipped) == 2


# --------------------------------------------------------------------------------------- CLI
def test_cli_writes_every_stem_with_input_rate_length_channels(tmp_path, music_exp, capsys):
    write_song(tmp_path / "in" / "stereo.wav", channels=2, seconds=0.4)
    write_song(tmp_path / "in" / "mono22k.flac", channels=1, seconds=0.3, sr=22050)
    rc = run_cli(
        "--model_dir",
        music_exp,
        "-o",
        tmp_path / "out",
        "--segment",
        "0.25",
        tmp_path / "in" / "stereo.wav",
        tmp_path / "in" / "mono22k.flac",
    )
    assert rc == 0
    for track, (sr, ch, n) in {"stereo": (44100, 2, 17640), "mono22k": (22050, 1, 6615)}.items():
        files = sorted(p.name for p in (tmp_path / "out" / track).iterdir())
        assert files == sorted(f"{s}.wav" for s in STEMS)
        for stem in STEMS:
            info = sf.info(tmp_path / "out" / track / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.frames) == (sr, ch, n)
            assert info.subtype == "PCM_16"
    assert "done: 2 separated, 0 already done, 0 failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "ext", "subtype"),
    [
        (["--flac"], "flac", "PCM_16"),
        (["--int24"], "wav", "PCM_24"),
        (["--float32"], "wav", "FLOAT"),
        (["--flac", "--int24"], "flac", "PCM_24"),
    ],
)
def test_cli_output_formats(tmp_path, music_exp, flags, ext, subtype):
    write_song(tmp_path / "a.wav", seconds=0.1)
    assert run_cli("--model_dir", music_exp, "-o", tmp_path / "o", *flags, tmp_path / "a.wav") == 0
    for stem in STEMS:
        info = sf.info(tmp_path / "o" / "a" / f"{stem}.{ext}")
        assert info.subtype == subtype and info.samplerate == 44100


def test_cli_folder_recursion_and_filename_template(tmp_path, music_exp):
    root = tmp_path / "musdb" / "test"
    write_song(root / "Track One" / "mixture.wav", seconds=0.1)
    write_song(root / "Track Two" / "mixture.flac", seconds=0.1, seed=1)
    write_song(root / "Track Two" / "deep" / "x.ogg", seconds=0.1, seed=2)
    (root / "notes.txt").write_text("not audio")
    write_song(root / ".hidden" / "skip.wav", seconds=0.3)
    out = root / "separated"  # inside the input folder: never taken as input
    write_song(out / "old" / "vocals.wav", seconds=0.3)
    found, errors = collect_inputs([root], out)
    assert errors == []
    assert [t for _, t in found] == ["Track One/mixture", "Track Two/deep/x", "Track Two/mixture"]
    rc = run_cli(
        "--model_dir",
        music_exp,
        "-o",
        out,
        "--filename",
        "{track}_{stem}.{trackext}.{ext}",
        "--stems",
        "vocals,bass",
        root,
    )
    assert rc == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav") if "old" not in p.parts)
    assert written == [
        "Track One/mixture_bass.wav.wav",
        "Track One/mixture_vocals.wav.wav",
        "Track Two/deep/x_bass.ogg.wav",
        "Track Two/deep/x_vocals.ogg.wav",
        "Track Two/mixture_bass.flac.wav",
        "Track Two/mixture_vocals.flac.wav",
    ]


def test_cli_two_stems_sum_to_the_other_stems(tmp_path, music_exp):
    write_song(tmp_path / "s.wav", seconds=0.3)
    common = ["--model_dir", music_exp, "--float32", "--clip-mode", "none", "--segment", "0.15"]
    assert run_cli(*common, "-o", tmp_path / "all", tmp_path / "s.wav") == 0
    assert run_cli(*common, "-o", tmp_path / "two", "--two-stems", "drums", tmp_path / "s.wav") == 0
    assert sorted(p.name for p in (tmp_path / "two" / "s").iterdir()) == [
        "drums.wav",
        "no_drums.wav",
    ]
    read = lambda p: sf.read(p, dtype="float32")[0]  # noqa: E731
    others = sum(read(tmp_path / "all" / "s" / f"{n}.wav") for n in ("vocals", "bass", "other"))
    np.testing.assert_allclose(read(tmp_path / "two" / "s" / "no_drums.wav"), others, atol=1e-6)
    np.testing.assert_array_equal(
        read(tmp_path / "two" / "s" / "drums.wav"), read(tmp_path / "all" / "s" / "drums.wav")
    )


def test_cli_overwrite(tmp_path, music_exp, capsys):
    write_song(tmp_path / "s.wav", seconds=0.1)
    args = ["--model_dir", music_exp, "-o", tmp_path / "o", "--stems", "vocals", tmp_path / "s.wav"]
    assert run_cli(*args) == 0
    target = tmp_path / "o" / "s" / "vocals.wav"
    target.write_bytes(b"placeholder")
    capsys.readouterr()
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert f"kept existing {target} (use --overwrite" in err
    assert "0 separated, 1 already done" in err
    assert target.read_bytes() == b"placeholder"
    assert run_cli(*args, "--overwrite") == 0
    assert sf.info(target).frames == 4410


def test_cli_clip_modes(tmp_path):
    loud = gain_separator(gains=[2.0, 1.0], segment=None)
    song = tmp_path / "loud.wav"
    sf.write(song, np.full((1000, 2), 0.8, np.float32), 44100)
    peaks = {}
    for mode in ("rescale", "clamp", "none"):
        loud.separate_file(song, tmp_path / mode, clip_mode=mode, sample_format="float32")
        peaks[mode] = [
            float(np.abs(sf.read(tmp_path / mode / "loud" / f"{s}.wav")[0]).max())
            for s in ("vocals", "drums")
        ]
    np.testing.assert_allclose(peaks["none"], [1.6, 0.8], rtol=1e-3)
    np.testing.assert_allclose(peaks["clamp"], [1.0, 0.8], rtol=1e-3)
    np.testing.assert_allclose(peaks["rescale"], [1.0, 0.5], rtol=1e-3)  # one factor for all


def test_cli_errors_name_the_file_and_the_others_still_run(tmp_path, music_exp, capsys):
    good = tmp_path / "good.wav"
    write_song(good, seconds=0.1)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), 44100)
    (tmp_path / "readme.txt").write_text("hi")
    sf.write(tmp_path / "surround.wav", np.full((500, 6), 0.1, np.float32), 44100)
    sf.write(tmp_path / "silence.wav", np.zeros((3000, 2), np.float32), 44100)
    sf.write(tmp_path / "one.wav", np.array([[0.5, -0.5]], np.float32), 44100)
    names = [
        "corrupt.wav",
        "empty.wav",
        "readme.txt",
        "surround.wav",
        "missing.wav",
        "silence.wav",
        "one.wav",
        "good.wav",
    ]
    rc = run_cli("--model_dir", music_exp, "-o", tmp_path / "out", *[tmp_path / n for n in names])
    assert rc == 1
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    expected = {
        "corrupt.wav": "cannot read audio",
        "empty.wav": "file is empty (0 samples)",
        "readme.txt": "unsupported extension '.txt'",
        "surround.wav": "audio has 6 channels; the model takes 2 (use --downmix",
        "missing.wav": "no such file or folder",
    }
    assert len(err_lines) == len(expected)
    for name, text in expected.items():
        line = next(ln for ln in err_lines if f"{tmp_path / name}:" in ln)
        assert text in line
    for name in ("silence", "one", "good"):
        assert len(list((tmp_path / "out" / name).glob("*.wav"))) == 4
    silent, _ = sf.read(tmp_path / "out" / "silence" / "vocals.wav")
    assert silent.shape == (3000, 2) and not silent.any()
    assert sf.info(tmp_path / "out" / "one" / "bass.wav").frames == 1
    assert not (tmp_path / "out" / "surround").exists()
    assert (
        run_cli(
            "--model_dir", music_exp, "-o", tmp_path / "out", "--downmix", tmp_path / "surround.wav"
        )
        == 0
    )
    assert sf.info(tmp_path / "out" / "surround" / "other.wav").channels == 2


def test_cli_unwritable_output_dir(tmp_path, music_exp, capsys):
    write_song(tmp_path / "s.wav", seconds=0.2)
    (tmp_path / "file").write_text("a file, not a folder")
    rc = run_cli("--model_dir", music_exp, "-o", tmp_path / "file" / "out", tmp_path / "s.wav")
    assert rc == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 's.wav'}: cannot write to output folder {tmp_path / 'file'}" in err


def test_cli_never_writes_over_an_input(tmp_path, music_exp, capsys):
    song = tmp_path / "vocals.wav"
    write_song(song, seconds=0.2)
    before = song.read_bytes()
    rc = run_cli("--model_dir", music_exp, "-o", tmp_path, "--filename", "{stem}.{ext}", song)
    assert rc == 1
    assert f"output {song} would overwrite an input file" in capsys.readouterr().err
    assert song.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocals.wav"]


def test_cli_refuses_two_inputs_with_the_same_outputs(tmp_path, music_exp, capsys):
    write_song(tmp_path / "a" / "song.wav", seconds=0.2)
    write_song(tmp_path / "b" / "song.wav", seconds=0.2, seed=1)
    rc = run_cli(
        "--model_dir",
        music_exp,
        "-o",
        tmp_path / "o",
        "--stems",
        "vocals",
        tmp_path / "a" / "song.wav",
        tmp_path / "b" / "song.wav",
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'b' / 'song.wav'}: output" in err and "already written for" in err
    assert (tmp_path / "o" / "song" / "vocals.wav").is_file()


def test_cli_write_failure_leaves_no_partial_file(tmp_path, music_exp, monkeypatch, capsys):
    from standalone import audio_io

    write_song(tmp_path / "s.wav", seconds=0.2)
    real_write = audio_io.sf.SoundFile.write

    def failing_write(self, data):
        if "bass" in os.path.basename(self.name):
            real_write(self, data[:10])  # part of the samples reach the disk
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(audio_io.sf.SoundFile, "write", failing_write)
    rc = run_cli("--model_dir", music_exp, "-o", tmp_path / "o", tmp_path / "s.wav")
    assert rc == 1
    assert "bass.wav: cannot write: [Errno 28] No space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "o" / "s")) == ["drums.wav", "vocals.wav"]


def test_cli_checkpoint_mismatch(tmp_path, music_exp, capsys):
    bad = write_experiment(tmp_path / "bad", "bslocoformer", TINY_BS, 256, 64, stem_names=STEMS)
    conf = yaml.safe_load((bad / "config.yaml").read_text())
    conf["separator_conf"]["emb_dim"] = 32
    (bad / "config.yaml").write_text(yaml.safe_dump(conf))
    write_song(tmp_path / "s.wav", seconds=0.2)
    assert run_cli("--model_dir", bad, "-o", tmp_path / "o", tmp_path / "s.wav") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {bad / 'valid.loss.ave_3best.pth'} does not match")
    assert "mis-shaped" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flac", "--float32"], "--flac cannot store --float32"),
        (["--int24", "--float32"], "not allowed with argument"),
        (["--stems", "vocals", "--two-stems", "bass"], "not allowed with argument"),
        (["--overlap", "1"], "--overlap must be in [0, 1)"),
        (["--filename", "{track}.{ext}"], "must contain {stem}"),
        (["--filename", "{song}/{stem}.{ext}"], "bad filename template"),
        (["--stems", "piano"], "unknown stem(s) piano"),
        (["--two-stems", "piano"], "unknown stem(s) piano"),
        (["-d", "tpu:3"], "Expected one of"),
        (["--segment", "-1"], "segment must be >= 0 seconds, got -1"),
        (["--segment", "long"], "segment must be 'auto' or seconds, got 'long'"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, music_exp, capsys, args, message):
    song = tmp_path / "s.wav"
    write_song(song, seconds=0.1)
    with pytest.raises(SystemExit) as exit_info:
        rc = run_cli("--model_dir", music_exp, "-o", tmp_path / "o", *args, song)
        raise SystemExit(rc)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_needs_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--config", tmp_path / "c.yaml", tmp_path / "s.wav")
    assert exit_info.value.code == 2
    assert "give --model_dir, or both --config and --checkpoint" in capsys.readouterr().err


def test_cli_config_and_checkpoint_pair(tmp_path, music_exp):
    write_song(tmp_path / "s.wav", seconds=0.2)
    rc = run_cli(
        "--config",
        music_exp / "config.yaml",
        "--checkpoint",
        music_exp / "valid.loss.ave_3best.pth",
        "-o",
        tmp_path / "o",
        "--stems",
        "other",
        tmp_path / "s.wav",
    )
    assert rc == 0 and (tmp_path / "o" / "s" / "other.wav").is_file()


@pytest.mark.slow
def test_recipe_cli_subprocess_matches_the_api(tmp_path, music_exp):
    song = tmp_path / "in" / "song.wav"
    write_song(song, seconds=0.4, sr=48000)
    opts = dict(segment=0.2, overlap=0.3, shifts=1, seed=3, batch_size=2)
    proc = subprocess.run(
        [
            sys.executable,
            str(RECIPE_CLI),
            "--model_dir",
            str(music_exp),
            "-o",
            str(tmp_path / "o"),
            "--float32",
            "--clip-mode",
            "none",
            "--segment",
            "0.2",
            "--overlap",
            "0.3",
            "--shifts",
            "1",
            "--seed",
            "3",
            "--batch-size",
            "2",
            "-d",
            "cpu",
            "-q",
            str(song),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet
    sep = Separator.from_pretrained(music_exp, **opts)
    wav, sr = sf.read(song, dtype="float32", always_2d=True)
    stems = sep(wav.T, sr)
    for name in STEMS:
        written, file_sr = sf.read(tmp_path / "o" / "song" / f"{name}.wav", dtype="float32")
        assert file_sr == 48000
        np.testing.assert_allclose(written.T, stems[name].numpy(), atol=1e-6)


def test_recipe_cli_finds_the_package_inside_an_espnet_tree(tmp_path):
    """Installed in an ESPnet tree, the CLI imports espnet2.enh.separator.locoformer."""
    tree = tmp_path / "espnet"
    recipe = tree / "egs2" / "musdb18hq" / "enh1"
    recipe.mkdir(parents=True)
    (recipe / "separate.py").write_bytes(RECIPE_CLI.read_bytes())
    pkg = tree / "espnet2" / "enh" / "separator"
    pkg.mkdir(parents=True)
    for folder in (tree / "espnet2", tree / "espnet2" / "enh", pkg):
        (folder / "__init__.py").write_text("")
    (pkg / "locoformer").symlink_to(REPO_ROOT / "standalone", target_is_directory=True)
    proc = subprocess.run(
        [sys.executable, str(recipe / "separate.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=recipe,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "--two-stems" in proc.stdout and "--model_dir" in proc.stdout


def test_audio_errors_from_separate_file_name_the_input(tmp_path):
    sep = gain_separator()
    with pytest.raises(AudioError, match=r"x\.wav: no such file"):
        sep.separate_file(tmp_path / "x.wav", tmp_path / "o")
