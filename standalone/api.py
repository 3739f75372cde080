"""Python API for splitting songs (or speech mixtures) with a trained separator.

    from standalone.api import Separator

    sep = Separator.from_pretrained("exp/enh_train_enh_bslocoformer_raw", device="cpu")
    stems = sep(waveform, sample_rate)         # {"vocals": [C, L], "drums": [C, L], ...}
    sep.separate_file("song.flac", "separated")  # separated/song/vocals.wav, ...

Pipeline for one waveform ``[C, L]`` at rate ``sr``:

1. channels: a file with as many channels as the model is passed as is; a mono file given to
   a stereo model is duplicated into both channels and the two output channels are averaged
   back, so **stems keep the input's channel count**; a stereo file given to a mono model is
   separated one channel at a time. More channels than the model takes (and any file with
   more than two) needs ``downmix=True``: model channel ``m`` becomes the mean of input
   channels ``m, m + M, m + 2M, ...`` and the stems then have the model's channel count.
2. resampling to the model's rate (band-limited, ``standalone.resample``) and back at the end,
   so stems have the input's rate and exact length.
3. normalisation as in training: with ``normalize_variance`` the mixture is divided by its
   standard deviation over the whole track (per channel with ``normalize_variance_per_ch``)
   and the stems are multiplied back. A track whose deviation is below ``SILENCE_STD`` is not
   scaled, and digital silence gives silent stems without running the model.
4. chunked overlap-add with optional random time shifts (``standalone.apply``).

``separate_file`` streams where it can (a wav/flac/ogg file, or an mp3 file through a decoded
scratch copy, at the model's rate, no shifts): it reads the file chunk by chunk and writes the
stems as they are finished (``standalone.streaming``), so memory does not grow with the
track's length.  Other files (another sample rate, shifts) are read whole.  Both ways give
the same stems.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
import torch

from .apply import StftConfig, apply_model, count_chunks, separate_chunks
from .audio_io import (
    CLIP_MODES,
    SAMPLE_FORMATS,
    AudioError,
    clip_stems,
    decode_to_wav,
    read_audio,
    write_audio,
)
from .checkpoint import load_separator
from .chunking import OverlapAddStream, chunk_batches
from .resample import resample
from .streaming import MixtureStats, StemScratch, open_seekable, read_blocks, read_span

__all__ = [
    "DEFAULT_FILENAME",
    "DEFAULT_OVERLAP",
    "DEFAULT_SEGMENT",
    "FALLBACK_SEGMENT",
    "SeparationResult",
    "Separator",
    "output_stem_names",
    "parse_segment",
]

DEFAULT_SEGMENT = "auto"  # chunks as long as the training examples, else FALLBACK_SEGMENT
FALLBACK_SEGMENT = 10.0  # seconds per chunk when the config records no training segment
DEFAULT_OVERLAP = 0.25  # fraction of a chunk shared with the next one
DEFAULT_FILENAME = "{track}/{stem}.{ext}"
MAX_SHIFT_SECONDS = 0.5
SILENCE_STD = 1e-8
TEMPLATE_KEYS = ("track", "trackext", "stem", "ext")


@dataclass
class SeparationResult:
    """What ``Separator.separate_file`` did: files written and existing files kept."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def parse_segment(text: str) -> float | str | None:
    """A ``--segment`` value: ``auto``, seconds > 0, or 0 for the whole input at once."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"segment must be 'auto' or seconds, got {text!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"segment must be >= 0 seconds, got {text}")
    return seconds or None


def output_stem_names(
    stem_names: Sequence[str], stems: Sequence[str] | None = None, two_stems: str | None = None
) -> list[str]:
    """Names of the files to write: all stems, a subset, or ``STEM`` and ``no_STEM``.

    Raises:
        ValueError: unknown stem name, or both ``stems`` and ``two_stems`` given.
    """
    if stems is not None and two_stems is not None:
        raise ValueError("give either stems or two_stems, not both")
    wanted = [two_stems] if two_stems is not None else list(stems or [])
    unknown = [s for s in wanted if s not in stem_names]
    if unknown:
        raise ValueError(
            f"unknown stem(s) {', '.join(unknown)}; the model has {', '.join(stem_names)}"
        )
    if two_stems is not None:
        return [two_stems, f"no_{two_stems}"]
    if stems:
        return list(dict.fromkeys(stems))
    return list(stem_names)


def format_output_path(template: str, track: str, stem: str, ext: str, trackext: str = "") -> Path:
    """Fill the filename template (keys: ``track``, ``trackext``, ``stem``, ``ext``)."""
    try:
        name = template.format(track=track, trackext=trackext, stem=stem, ext=ext)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"bad filename template {template!r} ({err}); keys: {', '.join(TEMPLATE_KEYS)}"
        ) from None
    if not name or name.endswith(("/", os.sep)):
        raise ValueError(f"filename template {template!r} gives an empty file name")
    return Path(name)


def check_template(template: str) -> None:
    """Reject templates with unknown keys or without ``{stem}`` (stems would collide)."""
    a = format_output_path(template, "t", "a", "wav")
    b = format_output_path(template, "t", "b", "wav")
    if a == b:
        raise ValueError(f"filename template {template!r} must contain {{stem}}")


def _as_waveform(waveform: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Any ``[L]`` or ``[C, L]`` array -> float32 CPU tensor ``[C, L]``."""
    wav = torch.as_tensor(waveform)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise ValueError(f"waveform must be [L] or [C, L], got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0 or wav.shape[0] == 0:
        raise ValueError("waveform is empty (0 samples)")
    if not wav.is_floating_point():
        raise ValueError(f"waveform must be floating point in [-1, 1], got {wav.dtype}")
    wav = wav.detach().to("cpu", torch.float32)
    if not torch.isfinite(wav).all():
        raise ValueError("waveform contains NaN or infinite samples")
    return wav


class Separator:
    """A trained separator with everything needed to split whole recordings.

    Attributes:
        model: the network (eval mode, on ``device``).
        info: the dict returned by ``standalone.checkpoint.load_separator``.
        stem_names: names of the model's outputs, e.g. ``["vocals", "drums", "bass", "other"]``.
        sample_rate: the rate the model runs at (Hz); None when the config does not say, in
            which case every input is processed at its own rate.
        num_channels: audio channels the model takes.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        info: dict,
        device: str | torch.device = "cpu",
        segment: float | str | None = DEFAULT_SEGMENT,
        overlap: float = DEFAULT_OVERLAP,
        shifts: int = 0,
        batch_size: int = 1,
        seed: int | None = None,
        sample_rate: int | None = None,
        progress: bool = False,
    ):
        """See ``from_pretrained``; ``model`` and ``info`` come from ``load_separator``."""
        if segment == "auto":
            train, fs = info.get("train_segment"), sample_rate or info.get("fs")
            segment = train / fs if train and fs else FALLBACK_SEGMENT
        elif segment is not None and (isinstance(segment, str) or segment <= 0):
            raise ValueError(f"segment must be positive seconds, 'auto' or None, got {segment!r}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap}")
        if shifts < 0:
            raise ValueError(f"shifts must be >= 0, got {shifts}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.info = info
        self.stem_names: list[str] = list(info["stem_names"])
        self.sample_rate: int | None = sample_rate or info.get("fs")
        self.num_channels: int = int(info["num_channels"])
        self.stft_config = StftConfig(
            n_fft=int(info["n_fft"]),
            hop_length=int(info["hop_length"]),
            win_length=info.get("win_length"),
            window=info.get("window", "hann"),
        )
        self.segment = segment
        self.overlap = overlap
        self.shifts = shifts
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        checkpoint: str | os.PathLike | None = None,
        config: str | os.PathLike | None = None,
        segment: float | str | None = DEFAULT_SEGMENT,
        overlap: float = DEFAULT_OVERLAP,
        shifts: int = 0,
        batch_size: int = 1,
        seed: int | None = None,
        sample_rate: int | None = None,
        progress: bool = False,
    ) -> Separator:
        """Load an ESPnet experiment (``model_dir``) or a ``config`` + ``checkpoint`` pair.

        Args:
            model_dir: experiment folder with ``config.yaml`` and the averaged best model.
            device: ``cpu``, ``cuda`` or ``cuda:N``.
            checkpoint, config: explicit files (override those found in ``model_dir``).
            segment: chunk length in seconds; ``"auto"``: the length of the training examples
                (transformers with RoPE are safest at the lengths they were trained on), or
                ``FALLBACK_SEGMENT`` when the config does not say; None: whole input at once.
            overlap: fraction of a chunk crossfaded with the next.
            shifts: random time shifts to average (0: none).
            batch_size: chunks per forward pass.
            seed: seed for the shifts (None: different shifts each call).
            sample_rate: the model's rate in Hz when the config does not record it.
            progress: show a tqdm bar per call (only on a terminal).

        Raises:
            standalone.checkpoint.CheckpointError: missing files or config/weights mismatch.
        """
        model, info = load_separator(
            model_dir=model_dir, config=config, checkpoint=checkpoint, device=device
        )
        return cls(
            model,
            info,
            device=device,
            segment=segment,
            overlap=overlap,
            shifts=shifts,
            batch_size=batch_size,
            seed=seed,
            sample_rate=sample_rate,
            progress=progress,
        )

    # ----------------------------------------------------------------------------- channels
    def check_channels(self, channels: int, downmix: bool = False) -> None:
        """Raise ValueError when audio with ``channels`` channels cannot be separated."""
        m = self.num_channels
        if channels > m and channels > 2 and not downmix:
            raise ValueError(
                f"audio has {channels} channels; the model takes {m} (use --downmix / "
                "downmix=True to average them)"
            )
        if 1 < channels < m:
            raise ValueError(f"audio has {channels} channels; the model takes {m}")

    def _to_model_channels(self, wav: torch.Tensor, downmix: bool) -> torch.Tensor:
        """``[C, L]`` -> ``[G, M, L]`` groups the model separates independently."""
        c, m = wav.shape[0], self.num_channels
        self.check_channels(c, downmix)
        if c > m and (downmix or c > 2):
            groups = [wav[i::m].mean(dim=0) for i in range(m)]
            return torch.stack(groups)[None]
        if c == m:
            return wav[None]
        if c == 1:
            return wav.expand(m, -1)[None]
        return wav[:, None]  # m == 1, c == 2: one channel at a time

    @staticmethod
    def _from_model_channels(out: torch.Tensor, in_channels: int, downmixed: bool) -> torch.Tensor:
        """``[G, N, M', L]`` -> ``[N, C, L]`` in the layout chosen by ``_to_model_channels``."""
        g, _, m_out, _ = out.shape
        if g > 1:  # channels separated one by one (mono model)
            return out.mean(dim=2).transpose(0, 1)
        out = out[0]
        if in_channels == 1 and m_out > 1 and not downmixed:
            return out.mean(dim=1, keepdim=True)
        return out

    # ---------------------------------------------------------------------------- separation
    def __call__(
        self,
        waveform: torch.Tensor | np.ndarray,
        sample_rate: int,
        downmix: bool = False,
        progress: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Separate one recording.

        Args:
            waveform: ``[C, L]`` or ``[L]`` float samples (tensor or numpy array).
            sample_rate: its rate in Hz.
            downmix: average extra channels down to the model's channel count.
            progress: override the instance's progress setting for this call.

        Returns:
            stem name -> float32 CPU tensor ``[C', L]``: same rate and length as the input,
            ``C' = C`` unless channels were downmixed (then the model's count).
        """
        wav = _as_waveform(waveform)
        in_channels, length = wav.shape
        downmixed = downmix and in_channels > self.num_channels
        groups = self._to_model_channels(wav, downmix)  # [G, M, L]
        model_sr = self.sample_rate or int(sample_rate)
        mix = resample(groups, int(sample_rate), model_sr)

        if not bool(mix.abs().max() > 0):
            stems = mix.new_zeros(groups.shape[0], len(self.stem_names), mix.shape[1], length)
        else:
            mix, std = self._normalise(mix)
            out = self._run(mix, model_sr, progress).mul_(std[:, None])
            del mix
            stems = resample(out, model_sr, int(sample_rate))[..., :length]
        stems = self._from_model_channels(stems, in_channels, downmixed)
        return {name: stems[i].contiguous() for i, name in enumerate(self.stem_names)}

    def _normalise(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Divide ``[G, M, L]`` by its std as in training; returns it and std ``[G, M|1, 1]``."""
        stats = MixtureStats()
        stats.update(mix)
        std = self._scale(stats)
        return mix / std, std

    def _scale(self, stats: MixtureStats) -> torch.Tensor:
        """The mixture's scale ``[G, M|1, 1]`` from its statistics: its std as in training
        (per channel with ``normalize_variance_per_ch``), or 1 without normalisation or for a
        (nearly) constant track."""
        if self.info.get("normalize_variance_per_ch"):
            std = stats.std(per_channel=True)
        elif self.info.get("normalize_variance"):
            std = stats.std(per_channel=False)
        else:
            return torch.ones(stats.mean.shape[0], 1, 1)
        # NaN (a single sample) compares False and falls back to 1 as well
        return torch.where(std > SILENCE_STD, std, torch.ones_like(std))

    def _chunking(self, model_sr: int) -> tuple[int | None, int]:
        """Chunk size and overlap in samples at the model's rate (None: one pass)."""
        if self.segment is None:
            return None, 0
        chunk = max(round(self.segment * model_sr), self.stft_config.n_fft)
        return chunk, int(self.overlap * chunk)

    def _run(self, mix: torch.Tensor, model_sr: int, progress: bool | None) -> torch.Tensor:
        """``[G, M, L]`` normalised mixture at the model's rate -> ``[G, N, M', L]``."""
        cfg = self.stft_config
        length = mix.shape[-1]
        if length < cfg.n_fft:  # the centred STFT needs more than n_fft // 2 samples
            mix = torch.nn.functional.pad(mix, (0, cfg.n_fft - length))
        chunk, overlap = self._chunking(model_sr)
        shifts = self.shifts
        max_shift = int(MAX_SHIFT_SECONDS * model_sr) if shifts else 0
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        total = count_chunks(mix.shape[-1] + max_shift, chunk, overlap) * max(shifts, 1)
        show = self.progress if progress is None else progress
        with _progress_bar(total, enabled=show) as bar:
            out = apply_model(
                self.model,
                mix,
                cfg,
                chunk_size=chunk,
                overlap=overlap,
                batch_size=self.batch_size,
                shifts=shifts,
                max_shift=max_shift,
                generator=generator,
                device=self.device,
                progress=bar.update,
            )
        return out[..., :length]

    # --------------------------------------------------------------------------------- files
    def separate_file(
        self,
        path: str | os.PathLike,
        output_dir: str | os.PathLike,
        filename: str = DEFAULT_FILENAME,
        stems: Sequence[str] | None = None,
        two_stems: str | None = None,
        audio_format: str = "wav",
        sample_format: str = "int16",
        clip_mode: str = "rescale",
        overwrite: bool = False,
        downmix: bool = False,
        track: str | None = None,
        protected: Sequence[str | os.PathLike] = (),
        progress: bool | None = None,
    ) -> SeparationResult:
        """Separate one file and write its stems.

        Args:
            path: wav, flac, ogg or mp3 file.
            output_dir: root of the outputs; ``filename`` is filled in below it with ``track``
                (default: the file name without extension), ``trackext``, ``stem``, ``ext``.
            stems: write only these stems. two_stems: write ``STEM`` and ``no_STEM`` (the sum
                of the other stems).
            audio_format: ``wav`` or ``flac``. sample_format: ``int16``, ``int24``, ``float32``.
            clip_mode: ``rescale``, ``clamp`` or ``none`` (see ``audio_io.clip_stems``).
            overwrite: replace existing outputs (otherwise they are kept and listed as skipped).
            downmix: average extra channels (see ``__call__``).
            protected: paths that must never be written (the inputs); ``path`` always is.

        Raises:
            AudioError: one-line message naming ``path`` (unreadable input, bad output folder,
                output would overwrite an input, write failure, ...).
            ValueError: bad options (unknown stem, template, format).
        """
        path = Path(path)
        if audio_format not in ("wav", "flac"):
            raise ValueError(f"audio_format must be wav or flac, got {audio_format!r}")
        if sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"sample_format must be one of {', '.join(SAMPLE_FORMATS)}")
        if audio_format == "flac" and sample_format == "float32":
            raise ValueError("flac cannot store float32 samples (use int16 or int24)")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {', '.join(CLIP_MODES)}")
        names = output_stem_names(self.stem_names, stems, two_stems)
        targets = self.output_paths(path, output_dir, filename, names, audio_format, track)

        forbidden = {Path(p).resolve() for p in (path, *protected)}
        for target in targets.values():
            if target.resolve() in forbidden:
                raise AudioError(f"{path}: output {target} would overwrite an input file")
        result = SeparationResult()
        todo = {}
        for name, target in targets.items():
            if target.exists() and not overwrite:
                result.skipped.append(target)
            else:
                todo[name] = target
        if not todo:
            return result
        with contextlib.ExitStack() as stack:
            source = self._open_stream(path, todo, stack) if self.shifts == 0 else None
            if source is not None:
                self._check_file(path, source.channels, downmix, todo)
                self._separate_streaming(
                    source,
                    path,
                    names,
                    todo,
                    two_stems,
                    downmix,
                    sample_format,
                    clip_mode,
                    progress,
                )
                result.written.extend(todo.values())
                return result
        wav, sr = read_audio(path)
        self._check_file(path, wav.shape[0], downmix, todo)
        try:
            separated = self(wav, sr, downmix=downmix, progress=progress)
        except ValueError as err:
            raise AudioError(f"{path}: {err}") from None
        separated = clip_stems(self._outputs(separated, two_stems, names), clip_mode)
        for name, target in todo.items():
            write_audio(target, separated[name], sr, sample_format)
            result.written.append(target)
        return result

    def _open_stream(
        self, path: Path, todo: dict[str, Path], stack: contextlib.ExitStack
    ) -> sf.SoundFile | None:
        """``path`` opened for streaming (closed by ``stack``), or None if it cannot stream:
        not at the model's rate, or not seekable.  An mp3 file is first decoded to a float32
        scratch copy next to the outputs (removed by ``stack``), which streams."""
        ext = path.suffix.lower()
        if ext == ".mp3":
            with contextlib.suppress(sf.LibsndfileError, RuntimeError, OSError, ValueError):
                if self.sample_rate not in (None, sf.info(path).samplerate):
                    return None
            folder = next(iter(todo.values())).parent
            created = [d for d in (folder, *folder.parents) if not d.exists()]
            _check_writable(path, folder)
            scratch = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=".decode-", dir=folder)
            )
            decoded = Path(scratch) / "decoded.wav"
            try:
                decode_to_wav(path, str(decoded))
            except AudioError:
                stack.close()  # a bad input leaves no folders behind
                for d in created:
                    with contextlib.suppress(OSError):
                        d.rmdir()
                raise
            source = open_seekable(decoded)
        else:
            source = open_seekable(path)
        if source is None:
            return None
        stack.enter_context(source)
        if self.sample_rate not in (None, source.samplerate):
            return None
        return source

    def _check_file(self, path: Path, channels: int, downmix: bool, todo: dict) -> None:
        """Channel count and output folders, before any compute (AudioError naming ``path``)."""
        try:
            self.check_channels(channels, downmix)
        except ValueError as err:
            raise AudioError(f"{path}: {err}") from None
        for folder in sorted({t.parent for t in todo.values()}):
            _check_writable(path, folder)

    def _outputs(
        self, separated: dict[str, torch.Tensor], two_stems: str | None, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """The stems asked for (``names``); ``no_STEM`` is the sum of the other stems."""
        if two_stems is not None:
            rest = [separated[n] for n in self.stem_names if n != two_stems]
            separated = {two_stems: separated[two_stems], f"no_{two_stems}": sum(rest)}
        return {n: separated[n] for n in names}

    def _separate_streaming(
        self,
        source,
        path: Path,
        names: Sequence[str],
        todo: dict[str, Path],
        two_stems: str | None,
        downmix: bool,
        sample_format: str,
        clip_mode: str,
        progress: bool | None,
    ) -> None:
        """``separate_file`` for a seekable file at the model's rate (``streaming``): the
        stems ``names`` are computed (the rescaling peak is theirs), ``todo`` are written."""
        sr, length, channels = source.samplerate, source.frames, source.channels
        downmixed = downmix and channels > self.num_channels
        out_channels = self.num_channels if downmixed else channels
        stats = MixtureStats()
        for block in read_blocks(source, path):
            stats.update(self._to_model_channels(block, downmix))
        scale = self._scale(stats)
        chunk, overlap = self._chunking(sr)
        chunk = length if chunk is None else chunk
        batches = list(chunk_batches(length, chunk, overlap, self.batch_size))
        stream = OverlapAddStream(length, chunk, overlap)
        show = self.progress if progress is None else progress
        folder = next(iter(todo.values())).parent
        with StemScratch(folder, names, sr, out_channels, path) as scratch:
            with _progress_bar(sum(map(len, batches)), enabled=show) as bar:
                for group in batches:
                    mix = [
                        self._to_model_channels(read_span(source, path, s, n), downmix)
                        for s, n in group
                    ]
                    if stats.peak > 0:  # digital silence gives silent stems, no model run
                        out = separate_chunks(
                            self.model,
                            torch.stack(mix) / scale,
                            self.stft_config,
                            self.device,
                        )
                    else:
                        n_out = (
                            len(group),
                            mix[0].shape[0],
                            len(self.stem_names),
                            *mix[0].shape[1:],
                        )
                        out = torch.zeros(n_out)
                    for piece, (s, _) in zip(out, group):
                        stream.add(s, piece)
                    block = stream.pop(stream.finished_after(*group[-1]))
                    if block is not None:
                        stems = self._from_model_channels(
                            block.mul_(scale[:, None]), channels, downmixed
                        )
                        named = dict(zip(self.stem_names, stems))
                        scratch.write(self._outputs(named, two_stems, names))
                    bar.update(len(group))
            scratch.finish(todo, sample_format, clip_mode)

    def output_paths(
        self,
        path: str | os.PathLike,
        output_dir: str | os.PathLike,
        filename: str,
        names: Sequence[str],
        audio_format: str = "wav",
        track: str | None = None,
    ) -> dict[str, Path]:
        """stem name -> output path for ``path`` (see ``separate_file``)."""
        path = Path(path)
        track = path.stem if track is None else track
        trackext = path.suffix.lstrip(".")
        return {
            n: Path(output_dir) / format_output_path(filename, track, n, audio_format, trackext)
            for n in names
        }


def _check_writable(source: Path, folder: Path) -> None:
    """Create ``folder`` and make sure a file can be created in it (before any compute)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        reason = err.strerror or str(err)
        raise AudioError(f"{source}: cannot write to output folder {folder}: {reason}") from None


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr when enabled and stderr is a terminal, else a no-op."""
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", leave=False, dynamic_ncols=True)
