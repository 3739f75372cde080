"""MUSDB18(-HQ) constants shared by the recipe's data, separation and scoring scripts.

This module is the single place that fixes the stem order of the recipe: ``spk1`` .. ``spk4``
in every data directory, every ``enh_config`` and every RESULTS.md refer to ``STEMS`` in this
order.
"""

from __future__ import annotations

# spk1..spk4, in this order.
STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other")

# The file holding the sum of all stems in each MUSDB18-HQ track folder.
MIXTURE = "mixture"

SAMPLE_RATE = 44100
NUM_CHANNELS = 2
SPLITS_ON_DISK: tuple[str, ...] = ("train", "test")

# The official 14-track validation split of MUSDB18 / MUSDB18-HQ (taken out of the 100 training
# tracks), as listed in the `musdb` package (musdb/configs/mus.yaml, key `validation_tracks`).
VALIDATION_TRACKS: tuple[str, ...] = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)


def spk_name(index: int) -> str:
    """ESPnet reference name of the stem at 0-based ``index`` in ``STEMS`` (``spk1`` for 0)."""
    return f"spk{index + 1}"
