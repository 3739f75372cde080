"""Training-time augmentation of multi-stem music examples (ESPnet ``preprocessor: music_augment``).

ESPnet calls the preprocessor once per example with the arrays read from the data directory:
``speech_mix`` (``wav.scp``) and ``speech_ref1`` .. ``speech_refN`` (``spk1.scp`` ..), each
``[L]`` (mono) or ``[L, C]`` (multi-channel). In training mode the stems are augmented and the
mixture is rebuilt as their sum; in validation/inference mode (``train=False``) the example is
returned untouched, so validation scores stay comparable from epoch to epoch.

Where the ideas come from, and what to expect:

* Remixing stems across tracks (``remix_prob``): replace stem ``k`` by stem ``k`` of another,
  randomly chosen training track at a random offset. Introduced for music separation by Uhlich
  et al., "Improving music source separation based on deep neural networks through data
  augmentation and network blending" (ICASSP 2017) and used by Open-Unmix and Demucs
  (Défossez et al., "Music source separation in the waveform domain", 2019/2021). It multiplies
  the number of distinct mixtures a model sees; published ablations credit it with about
  +0.7 dB SDR on MUSDB18. Jeon et al., "Why does music source separation benefit from
  cacophony?" (ICASSP 2024) analyse why the beat/key mismatch it creates does not hurt.
* Random per-stem gain (``gain_db``): the stem levels of a song vary between mixes; random
  gains (Uhlich et al. 2017 use a factor in [0.25, 1.25], i.e. about [-12, +2] dB) stop the
  model from relying on typical level ratios. Small but consistent gains in the same works.
* Channel swap (``channel_swap_prob``): left/right exchange per stem (Uhlich et al. 2017;
  Demucs' "channel swapping"); removes panning priors such as "bass is centred".
* Polarity flip (``polarity_flip_prob``): multiply a stem by -1 (Demucs' sign flip); the sum
  stays a plausible mixture and the model must not depend on absolute phase. Small effect,
  mainly regularisation against overfitting on the 86–100 MUSDB training songs.
* The mixture is recomputed as the sum of the (augmented) stems (``recompute_mixture``):
  MUSDB18-HQ mixtures are not exactly the sum of their stems (mastering, rounding), and after
  any augmentation the stored mixture no longer matches the stems at all.

Random numbers come from ``numpy.random``, which ESPnet reseeds per data-loader worker and
epoch; the distributed rank (``RANK``) is mixed in so that DDP workers draw different
augmentations.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import soundfile
from espnet2.fileio.read_text import read_2columns_text
from espnet2.train.preprocessor import AbsPreprocessor


class MusicAugmentPreprocessor(AbsPreprocessor):
    """Remix / gain / channel-swap / polarity-flip the stems, mixture = sum of stems.

    Args:
        train: augment (True) or pass the example through untouched (False).
        train_data_path_and_name_and_type: ESPnet's ``--train_data_path_and_name_and_type``
            triples; the ``sound`` entries named ``<ref_prefix><k>`` give the stem scp files
            that remixing draws from (passed in by ``EnhancementTask.build_preprocess_fn``).
        stem_scps: explicit stem scp files (stem 1 first), overriding the triples.
        mixture_name: data key of the mixture.
        ref_prefix: data key prefix of the stems (``speech_ref`` -> ``speech_ref1``, ...).
        segment_length: if set, crop a random segment of this many samples (same offset for
            all stems) before augmenting; longer examples only. Leave unset with ESPnet's chunk
            iterator, which cuts segments after preprocessing.
        remix_prob: probability, per stem, to take that stem from another random track.
        gain_db: ``[low, high]``: per-stem gain drawn uniformly in dB; unset = no gain.
        channel_swap_prob: probability, per stem, to swap left and right (reverse the channel
            order for more than two channels).
        polarity_flip_prob: probability, per stem, to multiply it by -1.
        recompute_mixture: replace the mixture by the sum of the stems (training only).
    """

    def __init__(
        self,
        train: bool,
        train_data_path_and_name_and_type: Sequence[Sequence[str]] | None = None,
        stem_scps: Sequence[str] | None = None,
        mixture_name: str = "speech_mix",
        ref_prefix: str = "speech_ref",
        segment_length: int | None = None,
        remix_prob: float = 0.0,
        gain_db: Sequence[float] | None = None,
        channel_swap_prob: float = 0.0,
        polarity_flip_prob: float = 0.0,
        recompute_mixture: bool = True,
    ):
        super().__init__(train)
        for name, p in (
            ("remix_prob", remix_prob),
            ("channel_swap_prob", channel_swap_prob),
            ("polarity_flip_prob", polarity_flip_prob),
        ):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"music_augment: {name} must be in [0, 1], got {p}")
        if gain_db is not None:
            if len(gain_db) != 2 or float(gain_db[0]) > float(gain_db[1]):
                raise ValueError(f"music_augment: gain_db must be [low, high], got {gain_db}")
            gain_db = (float(gain_db[0]), float(gain_db[1]))
        if segment_length is not None and int(segment_length) <= 0:
            raise ValueError(f"music_augment: segment_length must be > 0, got {segment_length}")
        self.mixture_name = mixture_name
        self.ref_prefix = ref_prefix
        self.segment_length = None if segment_length is None else int(segment_length)
        self.remix_prob = float(remix_prob)
        self.gain_db = gain_db
        self.channel_swap_prob = float(channel_swap_prob)
        self.polarity_flip_prob = float(polarity_flip_prob)
        self.recompute_mixture = recompute_mixture

        if stem_scps is None and train_data_path_and_name_and_type is not None:
            named = {name: path for path, name, _ in train_data_path_and_name_and_type}
            stem_scps = []
            while f"{ref_prefix}{len(stem_scps) + 1}" in named:
                stem_scps.append(named[f"{ref_prefix}{len(stem_scps) + 1}"])
        self.stem_scps = list(stem_scps or [])
        if train and self.remix_prob > 0 and not self.stem_scps:
            raise ValueError(
                "music_augment: remix_prob > 0 needs the stem scp files (stem_scps, or "
                f"'{ref_prefix}1'.. entries in --train_data_path_and_name_and_type)"
            )
        self._pools: list[list[tuple[str, str]]] | None = None  # loaded on first use
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None
        self._sample_rate: int | None = None

    # ------------------------------------------------------------------ helpers
    def _generator(self) -> np.random.Generator:
        """Per-process generator seeded from numpy's global state (ESPnet seeds it)."""
        if self._rng is None or self._rng_pid != os.getpid():
            rank = int(os.environ.get("RANK", "0"))
            self._rng = np.random.default_rng([int(np.random.randint(2**31 - 1)), rank])
            self._rng_pid = os.getpid()
        return self._rng

    def _stem_pools(self) -> list[list[tuple[str, str]]]:
        """For every stem, the (uid, wav path) pairs remixing can draw from."""
        if self._pools is None:
            pools = []
            for scp in self.stem_scps:
                if not os.path.isfile(scp):
                    raise FileNotFoundError(f"music_augment: stem scp not found: {scp}")
                entries = sorted(read_2columns_text(scp).items())
                if not entries:
                    raise ValueError(f"music_augment: stem scp is empty: {scp}")
                pools.append(entries)
            self._pools = pools
        return self._pools

    def _read_segment(
        self, path: str, length: int, channels: int | None, rng: np.random.Generator
    ) -> np.ndarray:
        """``length`` samples of ``path`` from a random offset, zero-padded: ``[length(, C)]``."""
        try:
            with soundfile.SoundFile(path) as f:
                rate, frames, file_channels = f.samplerate, f.frames, f.channels
                if self._sample_rate is None:
                    self._sample_rate = rate
                elif rate != self._sample_rate:
                    raise ValueError(
                        f"music_augment: {path}: sample rate {rate} Hz differs from "
                        f"{self._sample_rate} Hz of the other stems"
                    )
                if file_channels != (channels or 1):
                    raise ValueError(
                        f"music_augment: {path}: {file_channels} channel(s), the example has "
                        f"{channels or 1}"
                    )
                start = int(rng.integers(0, frames - length + 1)) if frames > length else 0
                f.seek(start)
                seg = f.read(min(length, frames), dtype="float32", always_2d=True)
        except soundfile.LibsndfileError as e:
            raise ValueError(f"music_augment: cannot read {path}: {e}") from None
        if seg.shape[0] < length:
            seg = np.concatenate(
                [seg, np.zeros((length - seg.shape[0], seg.shape[1]), dtype=seg.dtype)]
            )
        return seg if channels is not None else seg[:, 0]

    # ------------------------------------------------------------------ main
    def __call__(self, uid: str, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Augment one example.

        Args:
            uid: utterance (track) id.
            data: ``{mixture_name: [L(, C)], ref_prefix + "1": [L(, C)], ...}`` plus any other
                keys, which pass through.

        Returns:
            The same dict; in training the stems are augmented and the mixture is their sum.
        """
        if not self.train:
            return data
        keys = []
        while f"{self.ref_prefix}{len(keys) + 1}" in data:
            keys.append(f"{self.ref_prefix}{len(keys) + 1}")
        if not keys:
            return data
        rng = self._generator()
        stems = [np.asarray(data[k], dtype=np.float32) for k in keys]
        shape = stems[0].shape
        for k, s in zip(keys, stems):
            if s.shape != shape:
                raise ValueError(
                    f"music_augment: {uid}: {k} has shape {s.shape}, {keys[0]} has {shape}"
                )
        mixture = data.get(self.mixture_name)

        if self.segment_length is not None and shape[0] > self.segment_length:
            start = int(rng.integers(0, shape[0] - self.segment_length + 1))
            stop = start + self.segment_length
            stems = [s[start:stop] for s in stems]
            if mixture is not None:
                mixture = mixture[start:stop]
        length = stems[0].shape[0]
        channels = stems[0].shape[1] if stems[0].ndim == 2 else None

        out = []
        for idx, stem in enumerate(stems):
            if self.remix_prob > 0 and rng.random() < self.remix_prob:
                pools = self._stem_pools()
                if idx >= len(pools):
                    raise ValueError(
                        f"music_augment: {uid} has {len(keys)} stems but only {len(pools)} "
                        "stem scp files are known for remixing"
                    )
                pool = pools[idx]
                choices = [p for u, p in pool if u != uid] or [p for _, p in pool]
                path = choices[int(rng.integers(len(choices)))]
                stem = self._read_segment(path, length, channels, rng)
            if self.gain_db is not None:
                stem = stem * np.float32(10.0 ** (rng.uniform(*self.gain_db) / 20.0))
            if channels is not None and channels > 1 and rng.random() < self.channel_swap_prob:
                stem = stem[:, ::-1]
            if rng.random() < self.polarity_flip_prob:
                stem = -stem
            out.append(np.ascontiguousarray(stem, dtype=np.float32))

        for k, stem in zip(keys, out):
            data[k] = stem
        if self.recompute_mixture or mixture is None:
            data[self.mixture_name] = np.sum(np.stack(out), axis=0, dtype=np.float32)
        else:
            data[self.mixture_name] = np.asarray(mixture, dtype=np.float32)
        return data
