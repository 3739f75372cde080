#!/usr/bin/env python3
"""Generate a small synthetic music dataset in the MUSDB18-HQ folder layout.

Layout written under ``--out``::

    {out}/train/{Artist - Title}/mixture.wav, vocals.wav, drums.wav, bass.wav, other.wav
    {out}/test/{Artist - Title}/...
    {out}/valid_tracks.txt     names of the training tracks to hold out for validation
    {out}/manifest.json        options used and track lists (lets re-runs detect "already there")

Every track is a short "song": a tempo and key, a chord progression, sections (intro, verse,
chorus, bridge, outro) that change the arrangement density, a drum kit (kick, snare, closed and
open hats, crash), a bass line following the chord roots, a vocal-like melody (harmonic source
shaped by vowel formants, with vibrato, glides, consonant noise and phrases separated by rests)
and pads plus a chorus arpeggio as "other". Each stem is panned and sent to a shared stereo room.
The mixture is the sample-exact sum of the written stems.

All audio is 2-channel at ``--sample-rate`` (default 44.1 kHz). Each track draws from its own
random stream derived from ``(seed, split, index)``, so the output is a pure function of the
options (and independent of ``--nj``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from stems import MIXTURE, STEMS  # local/ is on sys.path when run as local/<script>.py

SPLIT_IDS = {"train": 0, "test": 1}
MANIFEST = "manifest.json"
VALID_LIST = "valid_tracks.txt"
SUBTYPES = ("PCM_16", "FLOAT")

ARTISTS = (
    "Aurora Tide",
    "Brass Lantern",
    "Cinder Vale",
    "Delta Ninefold",
    "Echo Parade",
    "Felt & Wire",
    "Glass Harbor",
    "Hollow Pines",
    "Iris Quarry",
    "June Atlas",
    "Kite Engine",
    "Low Meridian",
    "Mono Lisa",
    "Night Orchard",
    "Opal Static",
    "Paper Comets",
)
TITLES = (
    "Midnight Signal",
    "Salt On The Wire",
    "Paper Moons",
    "Running Lights",
    "Quiet Engines",
    "Velvet Hours",
    "Northern Lines",
    "Glass Houses",
    "Slow Satellite",
    "Tin Roof Rain",
    "Copper Skies",
    "Open Window",
    "Half Past Blue",
    "Lighthouse",
    "Second Nature",
    "Tidal",
)

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as 0-based scale degrees, one chord per bar.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 2, 6, 5), (0, 5, 3, 4)),
}
# Vowel formants: (F1, F2, F3) in Hz and relative peak amplitudes.
VOWELS = np.array(
    [[800, 1200, 2500], [500, 1800, 2500], [300, 2300, 3000], [500, 900, 2400], [350, 800, 2300]],
    dtype=float,
)
FORMANT_BW = np.array([90.0, 110.0, 170.0])
FORMANT_AMP = np.array([1.0, 0.55, 0.3])
# 16-step kick patterns (1 = hit).
KICK_PATTERNS = (
    (1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
    (1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0),
    (1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0),
    (1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0),
)
# Bass rhythms: (step, interval above the chord root in semitones, length in steps).
BASS_PATTERNS = (
    ((0, 0, 5), (6, 0, 2), (8, 0, 5), (14, 7, 2)),
    ((0, 0, 2), (3, 0, 2), (6, 0, 2), (8, 0, 3), (11, 12, 2), (14, 0, 2)),
    ((0, 0, 7), (8, 0, 3), (12, 7, 3)),
)
# Section kinds and their arrangement settings.
# hats: hits per bar; snare: backbeat (True), half-time ("half") or none; bass: rhythm style;
# vocal: probability of a phrase per two bars; arp: chorus arpeggio on; pad: pad velocity.
_SECTION_KEYS = ("hats", "kick", "snare", "bass", "vocal", "arp", "pad")
SECTIONS = {
    name: dict(zip(_SECTION_KEYS, values))
    for name, values in (
        ("intro", (4, False, False, "hold", 0.0, False, 0.7)),
        ("verse", (8, True, True, "groove", 0.8, False, 0.6)),
        ("chorus", (16, True, True, "eighths", 1.0, True, 1.0)),
        ("bridge", (4, True, "half", "hold", 0.5, True, 0.9)),
        ("outro", (8, True, False, "hold", 0.0, False, 0.8)),
    )
}
SONG_FORM = ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro")


class UserError(Exception):
    """A problem with the command-line options or the output folder (printed as one line)."""


@dataclass
class Section:
    kind: str
    start_bar: int
    n_bars: int


@dataclass
class SongPlan:
    """Musical skeleton of one track (all times derive from ``tempo`` and bar numbers)."""

    tempo: float  # beats per minute, 4/4
    key_root: int  # MIDI pitch class of the tonic (0 = C)
    scale: np.ndarray  # [7] semitone offsets of the mode
    sections: list[Section]
    chords: list[np.ndarray]  # per bar: MIDI pitches of the chord tones (root position)
    chord_roots: list[int]  # per bar: scale degree of the chord root
    n_bars: int

    @property
    def bar_s(self) -> float:
        return 240.0 / self.tempo

    @property
    def step_s(self) -> float:
        return self.bar_s / 16.0

    def section_of_bar(self, bar: int) -> Section:
        for sec in self.sections:
            if sec.start_bar <= bar < sec.start_bar + sec.n_bars:
                return sec
        return self.sections[-1]


# --------------------------------------------------------------------------------------------
# Small DSP helpers
# --------------------------------------------------------------------------------------------


def midi_to_hz(pitch: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=float) - 69.0) / 12.0)


def one_pole(x: np.ndarray, tau_s: float, sr: int) -> np.ndarray:
    """First-order low-pass smoothing of ``x`` [n] with time constant ``tau_s`` seconds."""
    a = np.exp(-1.0 / (tau_s * sr))
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]])
    return y


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of ``mono`` [n] to ``[2, n]``; position -1 (left) .. +1 (right)."""
    angle = (position + 1.0) * np.pi / 4.0
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def place(events: np.ndarray, gains: np.ndarray, sample: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Render a one-shot ``sample`` [k] at event times ``events`` [E] (s) scaled by ``gains`` [E].

    Returns [n]; hits running past the end are cut.
    """
    out = np.zeros(n)
    for start, gain in zip(np.round(events * sr).astype(int), gains):
        if 0 <= start < n:
            m = min(len(sample), n - start)
            out[start : start + m] += gain * sample[:m]
    return out


def decaying_noise(
    rng: np.random.Generator,
    sr: int,
    length_s: float,
    tau_s: float,
    band: tuple[float | None, float | None],
) -> np.ndarray:
    """Band-limited noise burst [k] with an exponential decay (``band`` = (low, high) Hz)."""
    k = int(length_s * sr)
    t = np.arange(k) / sr
    noise = rng.standard_normal(k)
    low, high = band
    nyq = 0.5 * sr
    if low is not None and high is not None:
        sos = signal.butter(2, [low / nyq, min(high / nyq, 0.99)], "bandpass", output="sos")
    elif low is not None:
        sos = signal.butter(2, low / nyq, "highpass", output="sos")
    else:
        sos = signal.butter(2, min(high / nyq, 0.99), "lowpass", output="sos")
    return signal.sosfilt(sos, noise) * np.exp(-t / tau_s)


def note_envelope(
    onsets: np.ndarray,
    durs: np.ndarray,
    vels: np.ndarray,
    n: int,
    sr: int,
    attack: float,
    decay: float,
    sustain: float,
    release: float,
):
    """ADSR envelope of a monophonic note sequence.

    Args:
        onsets, durs, vels: [E] note start (s, sorted), held length (s) and velocity.
    Returns:
        active: [A] sample indices where the envelope is non-zero,
        note: [A] index of the sounding note at those samples,
        since: [A] seconds since that note's onset,
        env: [A] envelope values in (0, 1].
    A note sounds for ``dur + release`` seconds but is faded out early enough to reach zero at
    the next onset, so consecutive notes never click.
    """
    if len(onsets) == 0:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty, empty
    next_on = np.append(onsets[1:], np.inf)
    end = np.minimum(onsets + durs + release, next_on)
    rel = np.maximum(np.minimum(release, end - onsets), 1e-3)
    start = np.clip(np.round(onsets * sr).astype(int), 0, n)
    stop = np.clip(np.ceil(end * sr).astype(int), 0, n)
    lengths = np.maximum(stop - start, 0)
    active = np.concatenate([np.arange(a, a + m) for a, m in zip(start, lengths)])
    note = np.repeat(np.arange(len(onsets)), lengths)
    t = active / sr
    since = t - onsets[note]
    att = np.clip(since / attack, 0.0, 1.0)
    dec = sustain + (1.0 - sustain) * np.exp(-since / decay)
    fade = np.clip((end[note] - t) / rel[note], 0.0, 1.0)
    env = att * dec * fade * vels[note]
    nz = env > 0
    return active[nz], note[nz], since[nz], env[nz]


def additive(
    phase: np.ndarray,
    f0: np.ndarray,
    n_harmonics: int,
    gain: Callable[[int], np.ndarray | float],
    sr: int,
) -> np.ndarray:
    """Sum of harmonics ``sum_k gain(k) * sin(k * phase)`` for k = 1..n_harmonics.

    Harmonics at or above 0.45 * sr are left out sample by sample (no aliasing).
    ``sin(k * phase)`` comes from the Chebyshev recurrence, so only one sin/cos is evaluated.

    Args:
        phase: [A] fundamental phase (rad); f0: [A] fundamental (Hz);
        gain: k -> scalar or [A] amplitude of harmonic k.
    Returns: [A]
    """
    limit = 0.45 * sr
    f_max, f_min = f0.max(initial=0.0), f0.min(initial=0.0)
    f0 = f0.astype(np.float32)
    s_prev, s_cur = np.zeros(len(phase), np.float32), np.sin(phase).astype(np.float32)
    two_cos = 2.0 * np.cos(phase).astype(np.float32)
    out = np.zeros(len(phase), np.float32)
    for k in range(1, n_harmonics + 1):
        if k * f_min >= limit:
            break
        term = gain(k) * s_cur
        if k * f_max >= limit:
            term = term * (k * f0 < limit)
        out += term
        s_prev, s_cur = s_cur, two_cos * s_cur - s_prev
    return out.astype(np.float64)


def phase_of(f0: np.ndarray, sr: int) -> np.ndarray:
    return 2.0 * np.pi * np.cumsum(f0) / sr


def room_ir(rng: np.random.Generator, sr: int, rt60: float) -> np.ndarray:
    """Stereo room impulse response ``[2, k]`` (decorrelated decaying noise, unit energy)."""
    k = int(min(1.2, rt60) * sr)
    t = np.arange(k) / sr
    tail = rng.standard_normal((2, k)) * np.exp(-6.9 * t / rt60)
    b, a = signal.butter(1, 5000.0 / (0.5 * sr), "lowpass")
    tail = signal.lfilter(b, a, tail, axis=-1)
    predelay = int(0.015 * sr)
    tail[:, :predelay] = 0.0
    return (tail / np.sqrt(np.sum(tail**2, axis=-1, keepdims=True))).astype(np.float32)


def mix_in_room(parts: list[tuple[np.ndarray, float, float]], ir: np.ndarray) -> np.ndarray:
    """Pan and reverberate the parts of one stem.

    Args:
        parts: (mono [n], pan position, reverb send) per instrument.
        ir: [2, k] room impulse response shared by the track.
    Returns: [2, n], the dry panned parts plus the room's response to the summed sends.
    """
    n = parts[0][0].shape[0]
    out = np.zeros((2, n))
    send = np.zeros(n, dtype=np.float32)
    for mono, position, wet in parts:
        out += pan(mono, position)
        send += wet * mono
    for ch in range(2):
        out[ch] += signal.oaconvolve(send, ir[ch])[:n]
    return out


# --------------------------------------------------------------------------------------------
# Song structure
# --------------------------------------------------------------------------------------------


def scale_pitch(plan_root: int, scale: np.ndarray, degree: int, base_octave: int) -> int:
    """MIDI pitch of the (possibly negative or >6) scale ``degree`` above octave ``base_octave``."""
    octave, step = divmod(degree, 7)
    return 12 * (base_octave + octave) + plan_root + int(scale[step])


def plan_song(rng: np.random.Generator, duration: float) -> SongPlan:
    tempo = float(rng.uniform(84.0, 140.0))
    key_root = int(rng.integers(0, 12))
    mode = "minor" if rng.random() < 0.5 else "major"
    scale = MINOR if mode == "minor" else MAJOR
    bar_s = 240.0 / tempo
    n_bars = int(np.ceil(duration / bar_s))
    intro = int(min(2, duration / bar_s // 6))
    sections = [Section("intro", 0, intro)] if intro else []
    bar = intro
    form = iter(SONG_FORM)
    while bar < n_bars:
        kind = next(form, "chorus")
        sections.append(Section(kind, bar, 4))
        bar += 4
    progs = PROGRESSIONS[mode]
    by_kind = {k: progs[int(rng.integers(len(progs)))] for k in SECTIONS}
    add_seventh = rng.random() < 0.4
    chords, roots = [], []
    for sec in sections:
        for b in range(sec.n_bars):
            degree = by_kind[sec.kind][b % 4]
            tones = [0, 2, 4, 6] if add_seventh else [0, 2, 4]
            chords.append(np.array([scale_pitch(key_root, scale, degree + d, 3) for d in tones]))
            roots.append(degree)
    return SongPlan(tempo, key_root, scale, sections, chords, roots, n_bars)


# --------------------------------------------------------------------------------------------
# Instruments. Each returns a stereo stem [2, n] before level normalisation.
# --------------------------------------------------------------------------------------------


def render_drums(
    plan: SongPlan, rng: np.random.Generator, n: int, sr: int, ir: np.ndarray
) -> np.ndarray:
    t_kick = np.arange(int(0.4 * sr)) / sr
    f_hi, f_lo = rng.uniform(110, 170), rng.uniform(42, 60)
    kick_f = f_lo + (f_hi - f_lo) * np.exp(-t_kick / 0.035)
    kick = np.sin(phase_of(kick_f, sr)) * np.exp(-t_kick / rng.uniform(0.1, 0.2))
    kick[: int(0.003 * sr)] += rng.standard_normal(int(0.003 * sr)) * 0.3
    t_sn = np.arange(int(0.3 * sr)) / sr
    snare = 0.5 * np.sin(2 * np.pi * rng.uniform(170, 230) * t_sn) * np.exp(-t_sn / 0.05)
    snare += decaying_noise(rng, sr, 0.3, rng.uniform(0.06, 0.11), (1200.0, 9000.0)) * 1.6
    hat = decaying_noise(rng, sr, 0.12, rng.uniform(0.015, 0.03), (7000.0, None)) * 1.2
    open_hat = decaying_noise(rng, sr, 0.5, 0.16, (6000.0, None))
    crash = decaying_noise(rng, sr, 2.0, 0.7, (3500.0, None)) * 0.8

    kick_pat = np.array(KICK_PATTERNS[int(rng.integers(len(KICK_PATTERNS)))], dtype=bool)
    swing = rng.uniform(0.0, 0.25) * plan.step_s
    step = plan.step_s
    ev: dict[str, list[tuple[float, float]]] = {k: [] for k in ("kick", "snare", "hat", "oh", "cr")}
    for bar in range(plan.n_bars):
        sec = plan.section_of_bar(bar)
        cfg = SECTIONS[sec.kind]
        bar_t = bar * plan.bar_s
        loud = 1.0 if sec.kind == "chorus" else 0.8
        last_bar = bar == sec.start_bar + sec.n_bars - 1
        if bar == sec.start_bar and sec.kind in ("chorus", "bridge"):
            ev["cr"].append((bar_t, 1.0))
        hat_every = 16 // cfg["hats"]
        for s in range(16):
            t = bar_t + s * step + (swing if s % 2 else 0.0)
            if s % hat_every == 0:
                accent = 1.0 if s % 4 == 0 else 0.65
                if sec.kind == "chorus" and s == 14:
                    ev["oh"].append((t, 0.8))
                else:
                    ev["hat"].append((t, accent * loud))
            if cfg["kick"] and kick_pat[s]:
                ev["kick"].append((t, loud))
            fill = last_bar and cfg["snare"] and s >= 12 and sec.kind != "outro"
            if fill:
                ev["snare"].append((t, 0.5 + 0.12 * (s - 12)))
            elif (cfg["snare"] is True and s in (4, 12)) or (cfg["snare"] == "half" and s == 8):
                ev["snare"].append((t, loud))
    kit = (
        ("kick", kick, 0.0, 0.05),
        ("snare", snare, -0.1, 0.2),
        ("hat", hat, 0.35, 0.1),
        ("oh", open_hat, 0.35, 0.15),
        ("cr", crash, -0.45, 0.2),
    )
    parts = []
    for name, sample, position, wet in kit:
        if not ev[name]:
            continue
        times, vels = np.array(ev[name]).T
        times = times + rng.normal(0.0, 0.003, len(times))
        vels = vels * rng.uniform(0.85, 1.0, len(vels))
        parts.append((place(times, vels, sample, n, sr), position, wet))
    return mix_in_room(parts, ir)


def render_bass(plan: SongPlan, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    pattern = BASS_PATTERNS[int(rng.integers(len(BASS_PATTERNS)))]
    onsets, durs, pitches, vels = [], [], [], []
    step = plan.step_s
    for bar in range(plan.n_bars):
        sec = plan.section_of_bar(bar)
        mode = SECTIONS[sec.kind]["bass"]
        root = plan.chords[bar][0] - 12  # one octave below the chord root (MIDI ~ 36-47)
        if root > 45:
            root -= 12
        bar_t = bar * plan.bar_s
        if mode == "hold":
            if sec.kind == "intro" and bar == sec.start_bar and sec.n_bars > 1:
                continue
            notes = ((0, 0, 15),)
        elif mode == "eighths":
            notes = tuple((s, 12 if s in (6, 14) else 0, 1.6) for s in range(0, 16, 2))
        else:
            notes = pattern
        for s, interval, length in notes:
            onsets.append(bar_t + s * step)
            durs.append(length * step * 0.9)
            pitches.append(root + interval)
            vels.append(rng.uniform(0.8, 1.0) * (1.0 if s % 4 == 0 else 0.85))
    onsets_a = np.array(onsets)
    active, note, since, env = note_envelope(
        onsets_a,
        np.array(durs),
        np.array(vels),
        n,
        sr,
        attack=0.006,
        decay=0.35,
        sustain=0.55,
        release=0.06,
    )
    f0_full = np.zeros(n)
    f0_full[active] = midi_to_hz(np.array(pitches))[note]
    f0 = f0_full[active]
    phase = phase_of(f0_full, sr)[active]
    tilt = rng.uniform(1.3, 2.0)
    # Upper harmonics fade faster.
    brightness_decay = np.exp(-since * rng.uniform(4.0, 9.0)).astype(np.float32)

    def gain(k: int) -> np.ndarray:
        return brightness_decay ** (k - 1) / k**tilt

    mono = np.zeros(n)
    mono[active] = env * additive(phase, f0, 12, gain, sr)
    return pan(mono, rng.uniform(-0.05, 0.05))


def formant_gain(freq: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Vocal-tract magnitude at ``freq`` [A] given per-sample formants ``formants`` [3, A] (Hz)."""
    g = np.full_like(freq, 0.02)
    for i in range(3):
        amp, half_bw = float(FORMANT_AMP[i]), 0.5 * float(FORMANT_BW[i])
        g += amp / (1.0 + ((freq - formants[i]) / half_bw) ** 2)
    return g


def vocal_notes(plan: SongPlan, rng: np.random.Generator, low: int):
    """Melody as (onsets, durs, pitches, vels) arrays; phrases of ~1.5 bars then a rest."""
    onsets, durs, pitches, vels = [], [], [], []
    step = plan.step_s
    degree = int(rng.integers(0, 5))
    for sec in plan.sections:
        density = SECTIONS[sec.kind]["vocal"]
        if density == 0.0:
            continue
        lift = 2 if sec.kind == "chorus" else 0
        for pair in range(0, sec.n_bars, 2):
            bar0 = sec.start_bar + pair
            # The first phrase is always sung, so even a very short track has vocals.
            if bar0 >= plan.n_bars or (onsets and rng.random() > density + 0.1):
                continue
            s = int(rng.choice([0, 2, 4]))
            limit = int(16 * min(2, plan.n_bars - bar0) - rng.choice([4, 6, 8]))
            while s < limit:
                length = int(rng.choice([2, 3, 4, 4, 6, 8] if sec.kind != "chorus" else [4, 6, 8]))
                length = min(length, limit - s)
                if length < 2:
                    break
                if s % 8 == 0:  # strong beat: land on the nearest tone of the bar's chord
                    root = plan.chord_roots[min(bar0 + s // 16, plan.n_bars - 1)]
                    tones = root + np.array([-7, -5, -3, 0, 2, 4, 7, 9, 11])
                    degree = int(tones[np.argmin(np.abs(tones - degree))])
                else:
                    degree += int(rng.choice([-2, -1, -1, 1, 1, 2]))
                degree = int(np.clip(degree, -1, 9))
                pitch = scale_pitch(plan.key_root, plan.scale, degree + lift, 0) + low
                onsets.append((bar0 * 16 + s) * step)
                durs.append(length * step * rng.uniform(0.8, 0.95))
                pitches.append(pitch)
                vels.append(rng.uniform(0.75, 1.0))
                s += length + int(rng.random() < 0.15) * 2  # a short breath now and then
    return np.array(onsets), np.array(durs), np.array(pitches, dtype=float), np.array(vels)


def render_vocals(
    plan: SongPlan, rng: np.random.Generator, n: int, sr: int, ir: np.ndarray
) -> np.ndarray:
    low = int(rng.choice([48, 55]))  # register: C3 or G3 for the tonic octave
    onsets, durs, pitches, vels = vocal_notes(plan, rng, low)
    mono = np.zeros(n)
    if len(onsets) == 0:
        return pan(mono, 0.0)
    active, note, since, env = note_envelope(
        onsets, durs, vels, n, sr, attack=0.04, decay=0.5, sustain=0.8, release=0.12
    )
    # Pitch with glides between notes, delayed vibrato and slow drift, computed on all samples.
    target = np.zeros(n)
    target[active] = pitches[note]
    held = np.maximum.accumulate(np.where(target > 0, np.arange(n), 0))
    target = target[held]
    target[target == 0] = pitches[0]
    pitch = one_pole(target, rng.uniform(0.025, 0.05), sr)
    t = np.arange(n) / sr
    vib_depth = np.zeros(n)
    vib_depth[active] = rng.uniform(0.2, 0.45) * np.clip((since - 0.18) / 0.3, 0.0, 1.0)
    pitch += vib_depth * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * t)
    drift = signal.resample_poly(rng.standard_normal(n // 2205 + 2), 2205, 1)[:n] * 0.05
    f0_full = midi_to_hz(pitch + drift)
    phase = phase_of(f0_full, sr)[active]
    f0 = f0_full[active]
    # Vowel per note, smoothed so formants glide between syllables.
    vowel = rng.integers(0, len(VOWELS), len(onsets))
    singer = rng.uniform(1.0, 1.15)
    formants = np.zeros((3, n))
    formants[:, active] = VOWELS[vowel[note]].T * singer
    formants = formants[:, held]
    formants[:, formants[0] == 0] = VOWELS[0][:, None] * singer
    for i in range(3):
        formants[i] = one_pole(formants[i], 0.03, sr)
    formants = formants[:, active].astype(np.float32)
    f0_32 = f0.astype(np.float32)
    mono[active] = env * additive(
        phase, f0, 24, lambda k: formant_gain(k * f0_32, formants) / k, sr
    )
    # Consonant-like noise bursts at the start of some syllables.
    hits = onsets[rng.random(len(onsets)) < 0.45]
    burst = decaying_noise(rng, sr, 0.06, 0.015, (3000.0, 11000.0)) * 0.25
    mono += place(hits, np.ones(len(hits)), burst, n, sr)
    return mix_in_room([(mono, rng.uniform(-0.1, 0.1), rng.uniform(0.15, 0.3))], ir)


def render_other(
    plan: SongPlan, rng: np.random.Generator, n: int, sr: int, ir: np.ndarray
) -> np.ndarray:
    bar_s = plan.bar_s
    n_voices = len(plan.chords[0])
    parts = []
    # Pads: one sustained note per chord tone and bar; the voices are slightly detuned against
    # each other and spread across the stereo field.
    bars = np.arange(plan.n_bars)
    pad_vel = np.array([SECTIONS[plan.section_of_bar(b).kind]["pad"] for b in bars])
    tilt = rng.uniform(1.6, 2.4)
    active, note, _, env = note_envelope(
        bars * bar_s,
        np.full(plan.n_bars, bar_s * 0.85),
        pad_vel,
        n,
        sr,
        attack=rng.uniform(0.08, 0.3),
        decay=1.0,
        sustain=0.75,
        release=0.25,
    )
    sides = np.linspace(-1.0, 1.0, n_voices) * rng.uniform(0.4, 0.8) * rng.choice([-1.0, 1.0])
    for v in range(n_voices):
        pitches = np.array([55 + (c[v] - 55) % 12 for c in plan.chords], dtype=float)
        f0_full = np.zeros(n)
        f0_full[active] = midi_to_hz(pitches[note] + rng.uniform(-0.1, 0.1))
        phase = phase_of(f0_full, sr)[active]
        mono = np.zeros(n)
        mono[active] = env * additive(phase, f0_full[active], 8, lambda k: k**-tilt, sr)
        parts.append((0.4 * mono, sides[v], 0.2))
    # Arpeggio in chorus and bridge sections: plucked chord tones an octave up, 8th notes.
    a_on, a_pitch = [], []
    for bar in range(plan.n_bars):
        if not SECTIONS[plan.section_of_bar(bar).kind]["arp"]:
            continue
        tones = np.sort(67 + (plan.chords[bar] - 67) % 12)
        for i, s in enumerate(range(0, 16, 2)):
            a_on.append(bar * bar_s + s * plan.step_s)
            a_pitch.append(tones[i % len(tones)] + (12 if i % 4 == 3 else 0))
    if a_on:
        a_on_arr = np.array(a_on)
        active, note, _, env = note_envelope(
            a_on_arr,
            np.full(len(a_on), 1.6 * plan.step_s),
            rng.uniform(0.6, 0.9, len(a_on)),
            n,
            sr,
            attack=0.003,
            decay=0.12,
            sustain=0.0,
            release=0.05,
        )
        f0_full = np.zeros(n)
        f0_full[active] = midi_to_hz(np.array(a_pitch))[note]
        phase = phase_of(f0_full, sr)[active]
        mono = np.zeros(n)
        mono[active] = env * additive(phase, f0_full[active], 10, lambda k: 1.0 / k, sr)
        parts.append((0.35 * mono, rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6), 0.25))
    return mix_in_room(parts, ir)


# --------------------------------------------------------------------------------------------
# Tracks and the dataset
# --------------------------------------------------------------------------------------------


def synthesize_track(
    seed: int,
    split: str,
    index: int,
    duration: float | None,
    min_duration: float,
    max_duration: float,
    sr: int,
) -> dict[str, np.ndarray]:
    """Render one track.

    Returns a dict mapping each name in ``STEMS`` to float64 audio ``[n, 2]``, already scaled so
    that the mixture (their sum) and every stem peak below 0.9.
    """
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    if duration is None:
        duration = float(rng.uniform(min_duration, max_duration))
    n = round(duration * sr)
    plan = plan_song(rng, duration)
    ir = room_ir(rng, sr, rng.uniform(0.5, 1.2))
    stems = {
        "vocals": render_vocals(plan, rng, n, sr, ir),
        "drums": render_drums(plan, rng, n, sr, ir),
        "bass": render_bass(plan, rng, n, sr),
        "other": render_other(plan, rng, n, sr, ir),
    }
    levels_db = {"vocals": 0.0, "drums": -1.0, "bass": -2.0, "other": -4.0}
    fade = np.ones(n)
    n_in, n_out = min(n, int(0.01 * sr)), min(n, int(1.0 * sr))
    fade[:n_in] = np.linspace(0.0, 1.0, n_in)
    fade[n - n_out :] *= np.linspace(1.0, 0.0, n_out)
    for name, audio in stems.items():
        rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
        gain_db = levels_db[name] + rng.uniform(-2.0, 2.0)
        stems[name] = (audio * (0.1 * 10 ** (gain_db / 20) / rms) * fade).T.astype(np.float64)
    mixture = sum(stems.values())
    peak = max(np.abs(mixture).max(), *(np.abs(a).max() for a in stems.values()))
    scale = rng.uniform(0.75, 0.9) / peak
    return {name: audio * scale for name, audio in stems.items()}


def quantize(audio: np.ndarray, subtype: str) -> np.ndarray:
    """Round ``audio`` to the values the file format stores, so written stems sum exactly."""
    if subtype == "PCM_16":
        return np.round(audio * 32768.0) / 32768.0
    return audio.astype(np.float32).astype(np.float64)


def write_track(folder: Path, stems: dict[str, np.ndarray], sr: int, subtype: str) -> None:
    folder.mkdir(parents=True)
    quantized = {name: quantize(audio, subtype) for name, audio in stems.items()}
    mixture = quantize(sum(quantized[name] for name in STEMS), subtype)
    for name, audio in {**quantized, MIXTURE: mixture}.items():
        sf.write(folder / f"{name}.wav", audio, sr, subtype=subtype)


def track_names(seed: int, count: int) -> list[str]:
    """``count`` distinct "Artist - Title" names, shuffled by ``seed``."""
    rng = np.random.default_rng([seed, 99])
    pairs = [(a, t) for a in ARTISTS for t in TITLES]
    order = rng.permutation(len(pairs))
    names = []
    for i in range(count):
        artist, title = pairs[order[i % len(pairs)]]
        suffix = f" {i // len(pairs) + 1}" if i >= len(pairs) else ""
        names.append(f"{artist} - {title}{suffix}")
    return names


def _render_job(job: tuple) -> None:
    folder, seed, split, index, args = job
    stems = synthesize_track(
        seed, split, index, None, args["min_duration"], args["max_duration"], args["sample_rate"]
    )
    write_track(Path(folder), stems, args["sample_rate"], args["subtype"])


def make_dataset(
    out: Path,
    num_train: int = 8,
    num_test: int = 2,
    num_valid: int = 2,
    min_duration: float = 20.0,
    max_duration: float = 30.0,
    seed: int = 0,
    sample_rate: int = 44100,
    subtype: str = "PCM_16",
    nj: int = 1,
) -> str:
    """Write the dataset to ``out`` atomically; returns "created" or "exists".

    An existing ``out`` written with the same options is left as it is ("exists"); any other
    existing ``out`` is an error (so a previous real dataset is never overwritten).
    """
    if num_train < 1 or num_test < 1:
        raise UserError("--num-train and --num-test must be at least 1")
    if not 0 <= num_valid < num_train:
        raise UserError(f"--num-valid must be in [0, --num-train): got {num_valid}")
    if not 0 < min_duration <= max_duration:
        raise UserError(
            f"need 0 < --min-duration <= --max-duration, got {min_duration}, {max_duration}"
        )
    if subtype not in SUBTYPES:
        raise UserError(f"--subtype must be one of {SUBTYPES}, got {subtype}")
    if sample_rate < 8000:
        raise UserError(f"--sample-rate must be at least 8000, got {sample_rate}")
    options = {
        "num_train": num_train,
        "num_test": num_test,
        "num_valid": num_valid,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "seed": seed,
        "sample_rate": sample_rate,
        "subtype": subtype,
    }
    out = Path(out)
    if out.exists():
        manifest = out / MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text(encoding="utf-8")).get("options")
            if old == options:
                return "exists"
            raise UserError(
                f"{out} holds a synthetic set made with other options ({old}); "
                "remove it or choose another --out"
            )
        if any(out.iterdir()):
            raise UserError(f"{out} exists and is not a synthetic MUSDB set; choose another --out")
    names = track_names(seed, num_train + num_test)
    splits = {"train": names[:num_train], "test": names[num_train:]}
    valid = splits["train"][num_train - num_valid :]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        jobs = [
            (str(tmp / split / name), seed, split, i, options)
            for split, split_names in splits.items()
            for i, name in enumerate(split_names)
        ]
        if nj > 1:
            with ProcessPoolExecutor(max_workers=nj) as pool:
                list(pool.map(_render_job, jobs))
        else:
            for job in jobs:
                _render_job(job)
        (tmp / VALID_LIST).write_text("".join(f"{v}\n" for v in valid), encoding="utf-8")
        manifest_data = {
            "generator": "make_synthetic_musdb.py",
            "options": options,
            "stems": list(STEMS),
            "tracks": splits,
            "valid": valid,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest_data, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return "created"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output root (MUSDB18-HQ layout)")
    parser.add_argument(
        "--num-train", "--num_train", type=int, default=8, help="tracks in train/ (default 8)"
    )
    parser.add_argument(
        "--num-test", "--num_test", type=int, default=2, help="tracks in test/ (default 2)"
    )
    parser.add_argument(
        "--num-valid",
        "--num_valid",
        type=int,
        default=2,
        help="train tracks listed in valid_tracks.txt (default 2)",
    )
    parser.add_argument(
        "--min-duration", "--min_duration", type=float, default=20.0, help="seconds (default 20)"
    )
    parser.add_argument(
        "--max-duration", "--max_duration", type=float, default=30.0, help="seconds (default 30)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", "--sample_rate", type=int, default=44100)
    parser.add_argument(
        "--subtype",
        default="PCM_16",
        choices=SUBTYPES,
        help="wav sample format (default PCM_16, as MUSDB18-HQ)",
    )
    parser.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    args = parser.parse_args(argv)
    try:
        status = make_dataset(
            args.out,
            args.num_train,
            args.num_test,
            args.num_valid,
            args.min_duration,
            args.max_duration,
            args.seed,
            args.sample_rate,
            args.subtype,
            args.nj,
        )
    except UserError as err:
        print(f"make_synthetic_musdb.py: error: {err}", file=sys.stderr)
        return 1
    if status == "exists":
        print(f"Synthetic MUSDB18-HQ set already in {args.out} (same options); kept it.")
    else:
        print(
            f"Wrote synthetic MUSDB18-HQ set to {args.out} "
            f"({args.num_train} train incl. {args.num_valid} valid, {args.num_test} test)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
