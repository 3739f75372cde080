"""Audio reading/writing (standalone.audio_io) and the band-limited resampler."""

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from standalone import audio_io
from standalone.audio_io import AudioError, clip_stems, read_audio, write_audio
from standalone.resample import resample, resampled_length


def noise(channels: int, length: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((length, channels)) * scale).astype(
        np.float32
    )


# ----------------------------------------------------------------------------------- reading
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("a.wav", {"subtype": "PCM_16"}),
        ("a.flac", {"subtype": "PCM_24"}),
        ("a.ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("a.mp3", {"format": "MP3"}),
        ("A.WAV", {"format": "WAV", "subtype": "FLOAT"}),
    ],
)
def test_read_formats_give_channels_first_float32(tmp_path, name, kwargs):
    data = noise(2, 4000)
    sf.write(tmp_path / name, data, 22050, **kwargs)
    wav, sr = read_audio(tmp_path / name)
    assert sr == 22050
    assert wav.dtype == torch.float32
    assert wav.shape[0] == 2
    if name.endswith(("wav", "WAV", "flac")):  # lossless: same samples (within 16-bit steps)
        assert wav.shape[1] == 4000
        np.testing.assert_allclose(wav.numpy(), data.T, atol=1 / 2**15)
    else:  # lossy codecs may add encoder delay; the content is still there
        assert wav.shape[1] >= 3000
        assert float(wav.abs().max()) > 0.01


def test_mono_file_reads_as_one_channel(tmp_path):
    sf.write(tmp_path / "m.wav", noise(1, 100)[:, 0], 8000)
    wav, _ = read_audio(tmp_path / "m.wav")
    assert wav.shape == (1, 100)


def test_mp3_falls_back_to_ffmpeg_when_libsndfile_lacks_it(tmp_path, monkeypatch):
    data = noise(2, 8000, scale=0.3)
    sf.write(tmp_path / "song.mp3", data, 44100, format="MP3")
    direct, _ = read_audio(tmp_path / "song.mp3")
    monkeypatch.setattr(audio_io, "_sndfile_reads_mp3", lambda: False)
    via_ffmpeg, sr = read_audio(tmp_path / "song.mp3")
    assert sr == 44100 and via_ffmpeg.shape[0] == 2
    assert abs(via_ffmpeg.shape[1] - direct.shape[1]) < 3000  # decoders trim delay differently
    assert float(via_ffmpeg.abs().max()) > 0.05


def test_mp3_without_any_decoder_is_a_clear_error(tmp_path, monkeypatch):
    sf.write(tmp_path / "song.mp3", noise(1, 2000), 44100, format="MP3")
    monkeypatch.setattr(audio_io, "_sndfile_reads_mp3", lambda: False)
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match=r"song\.mp3: cannot decode mp3: .*ffmpeg is not on PATH"):
        read_audio(tmp_path / "song.mp3")


def test_ffmpeg_failure_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "bad.mp3").write_bytes(b"not an mp3 at all" * 10)
    monkeypatch.setattr(audio_io, "_sndfile_reads_mp3", lambda: False)
    with pytest.raises(AudioError, match=r"bad\.mp3: cannot read audio: "):
        read_audio(tmp_path / "bad.mp3")


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk",
            "corrupt.wav",
            r"corrupt\.wav: cannot read audio",
        ),
        (b"hello", "notes.txt", r"notes\.txt: unsupported extension '\.txt'"),
        (None, "missing.wav", r"missing\.wav: no such file"),
    ],
)
def test_read_errors_are_one_line_and_name_the_file(tmp_path, content, name, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        read_audio(tmp_path / name)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / name))


def test_empty_file_is_an_error(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), 44100)
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty \(0 samples\)"):
        read_audio(tmp_path / "empty.wav")


def test_non_finite_samples_are_an_error(tmp_path):
    data = noise(1, 10)
    data[3] = np.nan
    sf.write(tmp_path / "nan.wav", data, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: file contains NaN"):
        read_audio(tmp_path / "nan.wav")


# ----------------------------------------------------------------------------------- writing
@pytest.mark.parametrize(
    ("name", "sample_format", "subtype"),
    [
        ("o.wav", "int16", "PCM_16"),
        ("o.wav", "int24", "PCM_24"),
        ("o.wav", "float32", "FLOAT"),
        ("o.flac", "int16", "PCM_16"),
        ("o.flac", "int24", "PCM_24"),
    ],
)
def test_write_subtypes_and_round_trip(tmp_path, name, sample_format, subtype):
    wav = torch.from_numpy(noise(2, 1000).T.copy())
    write_audio(tmp_path / name, wav, 32000, sample_format)
    info = sf.info(tmp_path / name)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (32000, 2, 1000, subtype)
    back, _ = read_audio(tmp_path / name)
    tol = {"int16": 1 / 2**15, "int24": 1 / 2**23, "float32": 1e-7}[sample_format]
    torch.testing.assert_close(back, wav, atol=tol, rtol=0)
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary file left


def test_written_file_has_normal_permissions(tmp_path):
    write_audio(tmp_path / "p.wav", torch.zeros(1, 10), 8000)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "p.wav").stat().st_mode & 0o777 == 0o666 & ~mask


def test_flac_float32_and_unknown_extension_are_refused(tmp_path):
    with pytest.raises(AudioError, match=r"FLAC cannot store float32"):
        write_audio(tmp_path / "o.flac", torch.zeros(1, 10), 8000, "float32")
    with pytest.raises(AudioError, match=r"o\.ogg: cannot write '\.ogg' files"):
        write_audio(tmp_path / "o.ogg", torch.zeros(1, 10), 8000)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "keep.wav"
    sf.write(target, np.zeros(5, np.float32), 8000)
    before = target.read_bytes()

    real_write = audio_io.sf.SoundFile.write

    def broken_write(self, data):
        real_write(self, data[:10])  # part of the samples reach the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio_io.sf.SoundFile, "write", broken_write)
    with pytest.raises(AudioError, match=r"keep\.wav: cannot write: .*No space left on device"):
        write_audio(target, torch.ones(1, 100) * 0.5, 8000)
    with pytest.raises(AudioError, match=r"new\.wav: cannot write"):
        write_audio(tmp_path / "new.wav", torch.ones(1, 100) * 0.5, 8000)
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]
    assert target.read_bytes() == before


def test_write_into_missing_folder_is_an_error(tmp_path):
    with pytest.raises(AudioError, match=r"o\.wav: cannot write to .*nope"):
        write_audio(tmp_path / "nope" / "o.wav", torch.zeros(1, 10), 8000)


def test_clip_modes():
    stems = {"a": torch.tensor([[0.5, -2.0]]), "b": torch.tensor([[1.0, 0.25]])}
    rescaled = clip_stems(stems, "rescale")
    torch.testing.assert_close(rescaled["a"], torch.tensor([[0.25, -1.0]]))
    torch.testing.assert_close(rescaled["b"], torch.tensor([[0.5, 0.125]]))  # same factor
    clamped = clip_stems(stems, "clamp")
    torch.testing.assert_close(clamped["a"], torch.tensor([[0.5, -1.0]]))
    assert clip_stems(stems, "none")["a"] is stems["a"]
    quiet = {"a": torch.tensor([[0.5, -0.9]])}
    assert clip_stems(quiet, "rescale")["a"] is quiet["a"]  # nothing to do under full scale
    with pytest.raises(ValueError, match="unknown clip mode 'loud'"):
        clip_stems(stems, "loud")


# -------------------------------------------------------------------------------- resampling
def tone(freqs, sr: int, seconds: float, dtype=torch.float64) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=dtype) / sr
    return sum(torch.sin(2 * math.pi * f * t + i) for i, f in enumerate(freqs)) / len(freqs)


@pytest.mark.parametrize(
    ("orig", "new"), [(44100, 48000), (48000, 44100), (22050, 44100), (44100, 8000), (8000, 11025)]
)
def test_resample_matches_the_analytic_signal(orig, new):
    freqs = [440.0, 1234.5, 3000.0]
    y = resample(tone(freqs, orig, 0.5), orig, new)
    assert y.shape[-1] == resampled_length(int(orig * 0.5), orig, new)
    ref = tone(freqs, new, 0.6)[: y.shape[-1]]
    inner = slice(new // 20, -new // 20)  # away from the zero-padded edges
    assert float((y - ref)[inner].abs().max()) < 1e-6


def test_resample_removes_content_above_the_new_nyquist():
    y = resample(tone([15000.0], 44100, 0.5), 44100, 22050)
    assert float(y[2000:-2000].abs().max()) < 1e-4


def test_resample_round_trip_and_shapes():
    x = torch.from_numpy(noise(2, 44100, seed=3).T.copy())
    spec = torch.fft.rfft(x)
    spec[..., int(spec.shape[-1] * 0.4) :] = 0  # band-limit below the lower rate's Nyquist
    x = torch.fft.irfft(spec, n=x.shape[-1])
    y = resample(resample(x[None], 44100, 22050), 22050, 44100)[0]
    assert y.shape == x.shape and y.dtype == torch.float32
    err = (y - x)[:, 1000:-1000].pow(2).mean() / x.pow(2).mean()
    assert float(err) < 1e-8


def test_resample_edge_cases():
    x = torch.randn(3, 7)
    assert resample(x, 16000, 16000) is x
    assert resample(torch.ones(1, 1), 22050, 44100).shape == (1, 2)
    assert resampled_length(1, 44100, 22050) == 1
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 0, 16000)
    with pytest.raises(TypeError, match="floating-point"):
        resample(torch.ones(4, dtype=torch.int16), 8000, 16000)
