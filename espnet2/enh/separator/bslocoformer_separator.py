"""ESPnet separator ``bslocoformer``: a thin adapter over the standalone BS-Locoformer.

See ``tflocoformer_separator.py`` for how the adapter and the network relate.
"""

from typing import List

from espnet2.enh.separator.abs_separator import AbsSeparator
from espnet2.enh.separator.locoformer.bslocoformer_separator import (
    BSLocoformerSeparator as BSLocoformerNet,
)
from espnet2.enh.separator.tflocoformer_separator import (
    LocoformerAdapterMixin,
    _adapter_signature,
)


class BSLocoformerSeparator(LocoformerAdapterMixin, BSLocoformerNet, AbsSeparator):
    """Band-split TF-Locoformer for ESPnet (music: ``num_spk: 4``, ``stereo: true``).

    ``input_dim`` (the encoder's F) must equal ``stft_size // 2 + 1``; ``sample_rate`` and
    ``stft_size`` define the band layout.  Further arguments are those of ``BSLocoformerNet``
    plus ``stem_names``.
    """

    def __init__(self, input_dim: int, *, stem_names: List[str] | None = None, **kwargs):
        BSLocoformerNet.__init__(self, **kwargs)
        if input_dim != self.n_freqs:
            raise ValueError(
                f"bslocoformer: the encoder gives {input_dim} frequency bins but stft_size "
                f"{2 * (self.n_freqs - 1)} needs {self.n_freqs}; set encoder_conf.n_fft equal "
                "to separator_conf.stft_size"
            )
        self._init_adapter(stem_names)


BSLocoformerSeparator.__init__.__signature__ = _adapter_signature(BSLocoformerNet)
