"""Streaming separation of files: the same stems as reading the file whole, bounded buffers,
the right fallbacks, and no scratch files left behind."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from test_separate import STEMS, TINY_BS, TINY_TF, gain_separator, write_experiment, write_song

from standalone import api
from standalone.api import Separator
from standalone.audio_io import AudioError
from standalone.chunking import OverlapAddStream, chunk_batches, overlap_add
from standalone.streaming import MixtureStats


def separate_in_memory(sep: Separator, path, **opts) -> dict[str, np.ndarray]:
    """Stems as ``Separator.__call__`` gives them for the whole file ([L, C] arrays)."""
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    stems = sep(torch.from_numpy(data.T.copy()), sr, **opts)
    return {name: wav.numpy().T for name, wav in stems.items()}


def read_stems(folder, names) -> dict[str, np.ndarray]:
    return {n: sf.read(folder / f"{n}.wav", dtype="float32", always_2d=True)[0] for n in names}


@pytest.fixture(scope="module")
def music_exp(tmp_path_factory):
    """A stereo BS-Locoformer experiment with random weights and variance normalisation."""
    root = tmp_path_factory.mktemp("exp") / "bs"
    return write_experiment(
        root, "bslocoformer", TINY_BS, 256, 64, {"normalize_variance": True}, STEMS
    )


@pytest.fixture
def no_whole_reads(monkeypatch):
    """Fail if separate_file reads the input whole."""

    def refuse(path):
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(api, "read_audio", refuse)


@pytest.mark.parametrize(
    "opts",
    [
        dict(segment=0.3, overlap=0.25, batch_size=1),
        dict(segment=0.25, overlap=0.5, batch_size=3),
        dict(segment=None),
    ],
)
def test_streamed_file_equals_the_whole_file_path(tmp_path, music_exp, opts, no_whole_reads):
    song = tmp_path / "song.wav"
    write_song(song, seconds=1.3)
    sep = Separator.from_pretrained(music_exp, **opts)
    sep.separate_file(song, tmp_path / "out", sample_format="float32", clip_mode="none")
    got = read_stems(tmp_path / "out" / "song", STEMS)
    want = separate_in_memory(sep, song)
    for name in STEMS:
        assert got[name].shape == want[name].shape == (int(1.3 * 44100), 2)
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, rtol=0)
    assert sorted(os.listdir(tmp_path / "out" / "song")) == sorted(f"{n}.wav" for n in STEMS)


def test_streamed_mono_input_downmix_and_two_stems(tmp_path, music_exp, no_whole_reads):
    sep = Separator.from_pretrained(music_exp, segment=0.4)
    mono = tmp_path / "mono.wav"
    write_song(mono, channels=1, seconds=1.0)
    sep.separate_file(mono, tmp_path / "o", two_stems="vocals", sample_format="float32")
    got = read_stems(tmp_path / "o" / "mono", ["vocals", "no_vocals"])
    want = separate_in_memory(sep, mono)
    assert got["vocals"].shape == (44100, 1)
    np.testing.assert_allclose(got["vocals"], want["vocals"], atol=1e-6)
    rest = want["drums"] + want["bass"] + want["other"]
    np.testing.assert_allclose(got["no_vocals"], rest, atol=1e-6)

    surround = tmp_path / "surround.wav"
    write_song(surround, channels=6, seconds=0.6)
    sep.separate_file(surround, tmp_path / "o", downmix=True, sample_format="float32")
    got = read_stems(tmp_path / "o" / "surround", STEMS)
    want = separate_in_memory(sep, surround, downmix=True)
    for name in STEMS:
        assert got[name].shape == (int(0.6 * 44100), 2)
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)


def test_streamed_mono_model_on_stereo_file_with_per_channel_normalisation(
    tmp_path, no_whole_reads
):
    # a speech-style model: mono, no sample rate in its config, per-channel normalisation
    root = write_experiment(
        tmp_path / "speech", "tflocoformer", TINY_TF, 128, 32, {"normalize_variance_per_ch": True}
    )
    sep = Separator.from_pretrained(root, segment=0.1, overlap=0.25, batch_size=2)
    song = tmp_path / "duet.flac"
    write_song(song, channels=2, seconds=0.5, sr=16000)
    sep.separate_file(song, tmp_path / "o", sample_format="float32", clip_mode="none")
    got = read_stems(tmp_path / "o" / "duet", ["spk1", "spk2"])
    want = separate_in_memory(sep, song)
    for name in ("spk1", "spk2"):
        assert got[name].shape == (8000, 2)
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_streamed_rescale_uses_the_peak_of_all_stems(tmp_path, no_whole_reads):
    song = tmp_path / "loud.wav"
    t = np.arange(30000) / 44100
    sf.write(song, np.stack([np.sin(2 * np.pi * 220 * t)] * 2, 1).astype(np.float32) * 0.9, 44100)
    sep = gain_separator(gains=[3.0, 1.0, 0.5, 0.25], segment=0.2)
    sep.separate_file(song, tmp_path / "o", sample_format="float32", clip_mode="rescale")
    got = read_stems(tmp_path / "o" / "loud", STEMS)
    peak = max(np.abs(w).max() for w in got.values())
    assert peak == pytest.approx(1.0, abs=1e-5)
    # the stems keep their ratios (one common factor)
    np.testing.assert_allclose(got["drums"] * 3.0, got["vocals"], atol=1e-5)
    sep.separate_file(song, tmp_path / "c", sample_format="float32", clip_mode="clamp")
    clamped = read_stems(tmp_path / "c" / "loud", STEMS)
    mix = sf.read(song, dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(clamped["vocals"], np.clip(3.0 * mix, -1, 1), atol=1e-5)
    np.testing.assert_allclose(clamped["bass"], 0.5 * mix, atol=1e-5)


def test_silent_file_streams_silent_stems_without_the_model(tmp_path, no_whole_reads):
    song = tmp_path / "silence.wav"
    sf.write(song, np.zeros((5000, 2), np.float32), 44100)
    sep = gain_separator(segment=0.05)
    sep.separate_file(song, tmp_path / "o")
    assert sep.model.calls == 0
    for wav in read_stems(tmp_path / "o" / "silence", STEMS).values():
        assert wav.shape == (5000, 2) and not wav.any()


def test_files_that_cannot_stream_are_read_whole(tmp_path, monkeypatch):
    reads = []
    real = api.read_audio

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(api, "read_audio", counting)
    song = tmp_path / "s.wav"
    write_song(song, seconds=0.3, sr=22050)
    gain_separator(segment=0.1).separate_file(song, tmp_path / "a")  # another rate
    gain_separator(segment=0.1, shifts=2, seed=0).separate_file(
        song.with_name("s.wav"), tmp_path / "b"
    )  # random shifts
    assert reads == [song, song]
    write_song(tmp_path / "t.wav", seconds=0.3)
    gain_separator(segment=0.1).separate_file(tmp_path / "t.wav", tmp_path / "c")
    assert reads == [song, song]  # at the model's rate: streamed


@pytest.mark.parametrize("decoder", ["libsndfile", "ffmpeg"])
def test_mp3_streams_through_a_decoded_copy(tmp_path, music_exp, decoder, monkeypatch):
    from standalone import audio_io

    song = tmp_path / "song.mp3"
    sf.write(song, write_song(tmp_path / "src.wav", seconds=1.0), 44100, format="MP3")
    sep = Separator.from_pretrained(music_exp, segment=0.3)
    if decoder == "ffmpeg":  # (the two decoders' samples differ slightly)
        monkeypatch.setattr(audio_io, "_sndfile_reads_mp3", lambda: False)
    decoded, _ = audio_io.read_audio(song)  # what the whole-file path separates
    whole = {name: wav.numpy().T for name, wav in sep(decoded, 44100).items()}

    def refuse(path):
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(api, "read_audio", refuse)
    sep.separate_file(song, tmp_path / "out", sample_format="float32", clip_mode="none")
    got = read_stems(tmp_path / "out" / "song", STEMS)
    for name in STEMS:
        assert got[name].shape == whole[name].shape == (decoded.shape[1], 2)
        np.testing.assert_allclose(got[name], whole[name], atol=1e-5)
    # the decoded copy and the stems' scratch files are gone
    assert sorted(os.listdir(tmp_path / "out" / "song")) == sorted(f"{n}.wav" for n in STEMS)


def test_streamed_gain_model_gives_exact_stems(tmp_path, no_whole_reads):
    song = tmp_path / "g.flac"
    data = write_song(song, seconds=0.7)
    sep = gain_separator(segment=0.13, overlap=0.3, batch_size=2)
    sep.separate_file(song, tmp_path / "o", audio_format="wav", sample_format="float32")
    got = read_stems(tmp_path / "o" / "g", STEMS)
    mix = sf.read(song, dtype="float32", always_2d=True)[0]
    assert mix.shape == data.shape
    for gain, name in zip([0.1, 0.2, 0.3, 0.4], STEMS):
        np.testing.assert_allclose(got[name], gain * mix, atol=2e-5)


def test_bad_samples_stop_before_any_output(tmp_path, no_whole_reads):
    song = tmp_path / "nan.wav"
    data = np.full((3000, 2), 0.1, np.float32)
    data[2500, 1] = np.nan
    sf.write(song, data, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: file contains NaN or infinite samples"):
        gain_separator(segment=0.02).separate_file(song, tmp_path / "o")
    assert os.listdir(tmp_path / "o" / "nan") == []


# ----------------------------------------------------------------------------- building blocks
def test_mixture_stats_match_torch_over_blocks():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10001, generator=gen) * 0.3 + 0.05
    stats = MixtureStats()
    for block in x.split(777, dim=-1):
        stats.update(block)
    torch.testing.assert_close(stats.std(per_channel=True)[..., 0], x.double().std(-1).float())
    torch.testing.assert_close(
        stats.std(per_channel=False).flatten(), x.flatten(1).double().std(-1).float()
    )
    assert stats.peak == pytest.approx(float(x.abs().max()))
    one = MixtureStats()
    one.update(torch.ones(1, 1, 1))  # one sample: no deviation defined (as torch.std)
    assert torch.isnan(one.std(per_channel=False)).all()


def test_chunk_batches_put_a_short_last_chunk_alone():
    assert list(chunk_batches(10, 4, 1, 2)) == [[(0, 4), (3, 4)], [(6, 4)]]
    assert list(chunk_batches(11, 4, 1, 2)) == [[(0, 4), (3, 4)], [(6, 4)], [(9, 2)]]
    assert list(chunk_batches(3, 4, 1, 5)) == [[(0, 3)]]
    with pytest.raises(ValueError, match="overlap"):
        list(chunk_batches(10, 4, 4, 1))


def test_overlap_add_does_not_depend_on_the_batch_size():
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(1))
    seen = []

    def fn(chunks):
        seen.append(chunks.shape[-1])
        return torch.tanh(chunks * 2 + chunks.mean(-1, keepdim=True))

    one = overlap_add(fn, x, -1, 128, 32, batch_size=1)
    five = overlap_add(fn, x, -1, 128, 32, batch_size=5)
    torch.testing.assert_close(one, five, rtol=0, atol=1e-7)
    assert seen[-1] == 1000 - 96 * 10  # the last chunk runs unpadded (40 samples)


def test_overlap_add_stream_keeps_only_the_unfinished_samples():
    length, chunk, overlap = 10_000, 400, 100
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(2))
    stream = OverlapAddStream(length, chunk, overlap)
    pieces, largest = [], 0
    for group in chunk_batches(length, chunk, overlap, 3):
        for s, n in group:
            stream.add(s, x[:, s : s + n] * 2)
        largest = max(largest, stream._sum.shape[-1])
        block = stream.pop(stream.finished_after(*group[-1]))
        if block is not None:
            pieces.append(block)
    assert largest <= 3 * chunk
    torch.testing.assert_close(torch.cat(pieces, -1), x * 2)
    with pytest.raises(ValueError, match="popped"):
        stream.add(0, x[:, :chunk])


def test_undecodable_mp3_names_the_file_and_leaves_no_folders(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\xff\xfb" + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match=r"bad\.mp3: cannot read audio"):
        gain_separator(segment=0.1).separate_file(bad, tmp_path / "out" / "sub")
    assert not (tmp_path / "out").exists()
