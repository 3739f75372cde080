"""Fixed-order loss wrapper for music stems: no permutation search, per-stem statistics.

In music separation output ``n`` is always stem ``n`` (e.g. vocals, drums, bass, other), so a
permutation search (PIT) would only let the network swap stems. This wrapper pairs reference
``n`` with estimate ``n``, weights the stems (default: equally) and reports the loss of every
stem under ``<criterion name>_<stem name>`` next to the weighted total, so training logs and
TensorBoard show which stem is lagging.
"""

from __future__ import annotations

from typing import Sequence

import torch
from espnet2.enh.loss.criterions.abs_loss import AbsEnhLoss
from espnet2.enh.loss.wrappers.abs_wrapper import AbsLossWrapper


class StemFixedOrderSolver(AbsLossWrapper):
    """Loss of estimate ``n`` against reference ``n`` for every stem, weighted sum.

    Args:
        criterion: the ESPnet criterion applied to each (reference, estimate) pair; it returns
            ``[B]`` per pair.
        weight: weight of this criterion in the model's total loss.
        stem_names: names used in the statistics keys (default ``stem1``, ``stem2``, ...).
        stem_weights: relative weight of each stem (default all equal); normalised to sum 1.
    """

    def __init__(
        self,
        criterion: AbsEnhLoss,
        weight: float = 1.0,
        stem_names: Sequence[str] | None = None,
        stem_weights: Sequence[float] | None = None,
    ):
        super().__init__()
        self.criterion = criterion
        self.weight = weight
        self.stem_names = None if stem_names is None else [str(n) for n in stem_names]
        if stem_weights is not None:
            stem_weights = [float(w) for w in stem_weights]
            if any(w < 0 for w in stem_weights) or sum(stem_weights) <= 0:
                raise ValueError(
                    f"stem_weights must be >= 0 with a positive sum, got {stem_weights}"
                )
            if self.stem_names is not None and len(stem_weights) != len(self.stem_names):
                raise ValueError(
                    f"{len(stem_weights)} stem_weights for {len(self.stem_names)} stem_names"
                )
        self.stem_weights = stem_weights

    def forward(
        self, ref: list[torch.Tensor], inf: list[torch.Tensor], others: dict | None = None
    ) -> tuple[torch.Tensor, dict, dict]:
        """Fixed-order loss.

        Args:
            ref: N references, each ``[B, L]`` / ``[B, L, C]`` (or spectra ``[B, T, (C,) F]``).
            inf: N estimates in the same order and layout.
            others: unused (ESPnet passes the other wrappers' outputs here).

        Returns:
            loss: scalar, the stem-weighted mean over the batch.
            stats: ``{name: total, name_<stem>: per-stem loss}``, all detached.
            others: ``{"perm": [B, N]}``, the identity permutation.
        """
        num = len(ref)
        if len(inf) != num:
            raise ValueError(f"{num} references but {len(inf)} estimates")
        names = self.stem_names or [f"stem{i + 1}" for i in range(num)]
        if len(names) != num:
            raise ValueError(f"stem_names lists {len(names)} stems but the model gives {num}")
        if self.stem_weights is None:
            weights = [1.0 / num] * num
        elif len(self.stem_weights) != num:
            raise ValueError(f"{len(self.stem_weights)} stem_weights for {num} stems")
        else:
            total = sum(self.stem_weights)
            weights = [w / total for w in self.stem_weights]

        name = self.criterion.name
        stats = {}
        loss = 0.0
        for stem, w, r, i in zip(names, weights, ref, inf):
            stem_loss = self.criterion(r, i).mean()
            stats[f"{name}_{stem}"] = stem_loss.detach()
            loss = loss + w * stem_loss
        stats[name] = loss.detach()
        perm = torch.arange(num, device=ref[0].device).unsqueeze(0).repeat(ref[0].size(0), 1)
        return loss, stats, {"perm": perm}
