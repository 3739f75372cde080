"""TF-Locoformer / BS-Locoformer separators for speech and music, usable without ESPnet.

from standalone import BSLocoformerSeparator, load_separator
"""

from .api import Separator
from .bslocoformer_separator import BSLocoformerSeparator, band_widths
from .checkpoint import CheckpointError, load_separator, remap_state_dict
from .chunking import chunked_separation, overlap_add
from .stft import istft, stft
from .tflocoformer_separator import TFLocoformerSeparator

__all__ = [
    "BSLocoformerSeparator",
    "CheckpointError",
    "Separator",
    "TFLocoformerSeparator",
    "band_widths",
    "chunked_separation",
    "istft",
    "load_separator",
    "overlap_add",
    "remap_state_dict",
    "stft",
]
