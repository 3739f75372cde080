"""One switch between the fast forms of the networks' operations and their plain forms.

The networks run their fast forms by default.  ``plain_mode()`` makes them run the
straightforward forms instead, which compute the same function (outputs equal within 1e-4)
and exist to measure what the fast forms gain (``tools/benchmark.py``) and to test them:

==========================  ==================================  ===========================
part                        fast (default)                      plain
==========================  ==================================  ===========================
conv FFNs                   channels-last im2col + one matrix   ``nn.Conv1d`` /
                            product per convolution, no         ``nn.ConvTranspose1d`` on
                            transposes, SwiGLU product in place  ``[B, C, L]`` copies
attention                   torch's fastest SDPA kernel (fused  SDPA forced to the math
                            flash kernel on CPU), RoPE as one   kernel, RoPE rotating
                            complex product on packed ``qkv``   permuted q and k copies
band-split encoder/decoder  one batched product per run of      one small product per band
                            equal-width bands (7 at 44.1 kHz)   (62 at 44.1 kHz)
Locoformer layers           sequences in slices at inference    all sequences at once
                            (small temporaries)
==========================  ==================================  ===========================

The flag is global to the process (not per thread), so switch it around whole forward
passes only::

    from standalone.perf import plain_mode

    with plain_mode():
        reference = model(spec)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["is_plain", "plain_mode"]

_plain = False


def is_plain() -> bool:
    """True inside ``plain_mode()``: the networks use their straightforward forms."""
    return _plain


@contextlib.contextmanager
def plain_mode(enabled: bool = True) -> Iterator[None]:
    """Run the enclosed forward passes with the plain forms (``enabled=False``: fast ones)."""
    global _plain
    previous, _plain = _plain, enabled
    try:
        yield
    finally:
        _plain = previous
