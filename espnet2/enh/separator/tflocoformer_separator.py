"""ESPnet separator ``tflocoformer``: a thin adapter over the standalone TF-Locoformer.

The network itself lives in ``espnet2/enh/separator/locoformer/`` (this project's
``standalone/`` package, copied there by ``copy_files_to_espnet.sh``).  The adapter is a
subclass of that network, so its state-dict keys are the network's own and an ESPnet
checkpoint stores them as ``separator.`` + key (what ``standalone.load_separator`` reads).
"""

import inspect
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from espnet2.enh.separator.abs_separator import AbsSeparator
from espnet2.enh.separator.locoformer.tflocoformer_separator import (
    TFLocoformerSeparator as TFLocoformerNet,
)


class LocoformerAdapterMixin:
    """ESPnet's separator interface on top of a standalone Locoformer network.

    ESPnet features are ``[B, T, F]`` (one channel) or ``[B, T, C, F]`` complex; the
    networks take ``[B, M, T, F]``.
    """

    def _init_adapter(self, stem_names: List[str] | None):
        if stem_names is not None and len(stem_names) != self.num_spk:
            raise ValueError(f"stem_names {stem_names} must have num_spk={self.num_spk} entries")
        self.stem_names = list(stem_names) if stem_names else None

    def forward(
        self,
        input: torch.Tensor,
        ilens: torch.Tensor,
        additional: Dict | None = None,
    ) -> Tuple[List[torch.Tensor], torch.Tensor, OrderedDict]:
        """Separate.

        Args:
            input: mixture STFT, complex ``[B, T, F]`` or ``[B, T, C, F]``.
            ilens: ``[B]`` frame counts (returned unchanged).
            additional: unused.

        Returns:
            ``num_spk`` complex tensors in the input's layout, ``ilens``, an empty OrderedDict.
        """
        if not torch.is_complex(input):  # torch_complex.ComplexTensor from older encoders
            input = torch.complex(input.real, input.imag)
        spec = input.unsqueeze(1) if input.dim() == 3 else input.transpose(1, 2)
        est = super().forward(spec)  # [B, N, (M,) T, F]
        if est.dim() == 4:
            est = est.unsqueeze(2)
        est = est.squeeze(2) if input.dim() == 3 else est.transpose(2, 3)
        return list(est.unbind(1)), ilens, OrderedDict()


def _adapter_signature(net_cls) -> inspect.Signature:
    """``input_dim`` + the network's arguments + ``stem_names`` (for ``--print_config``)."""
    params = list(inspect.signature(net_cls.__init__).parameters.values())
    extra = [
        inspect.Parameter("input_dim", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("stem_names", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    return inspect.Signature([params[0], extra[0], *params[1:], extra[1]])


class TFLocoformerSeparator(LocoformerAdapterMixin, TFLocoformerNet, AbsSeparator):
    """TF-Locoformer (Saijo et al., IWAENC 2024) for ESPnet.

    ``input_dim`` is the encoder's output size (F); the network works for any F.  Further
    arguments are those of ``TFLocoformerNet`` (``num_channels: 2`` for stereo input), plus
    ``stem_names`` to name the sources in the config (used by ``separate.py``).
    """

    def __init__(self, input_dim: int, *, stem_names: List[str] | None = None, **kwargs):
        TFLocoformerNet.__init__(self, **kwargs)
        self._init_adapter(stem_names)


TFLocoformerSeparator.__init__.__signature__ = _adapter_signature(TFLocoformerNet)
