"""nnsight 0.8 backend: a ``TransformersModel`` traced locally or remotely on NDIF.

Every computation runs inside a trace and reduces there (final norm, unembedding, entropy,
gathers), so on a remote model only the small tensors a probe asked for travel back.
``remote="local"`` runs nnsight's whole remote round-trip on this machine (serialisation
included); ``remote=True`` sends the request to NDIF with the API key from ``NDIF_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from probes.backend.base import (
    Backend,
    Encoded,
    LensRead,
    LensReadout,
    ReadPlan,
    lm_loss,
    resolve_positions,
)
from probes.backend.errors import PivotlensError


def _block_output(block) -> torch.Tensor:
    """Under transformers 5 a decoder layer returns a tensor; older versions a tuple."""
    out = block.output
    return out[0] if isinstance(out, tuple) else out


class NNsightBackend(Backend):
    """Backend on nnsight's ``TransformersModel`` (``remote``: False, ``"local"`` or True)."""

    name = "nnsight"

    def __init__(self, hf_model, tokenizer, *, remote: bool | str = False, **info: str) -> None:
        from nnsight.modeling.transformers import TransformersModel

        super().__init__(hf_model, tokenizer, **info)
        self.remote = remote
        # NDIF runs every trace on its own, with nothing kept between requests: a prefix's cache
        # would have to be made here (the weights are not) and travel with every request. So a
        # remote model re-encodes the prefix with every row (Backend.encode_after's uncached path).
        self.reuses_prefix_cache = remote is False
        self._model = hf_model
        # NDIF identifies a model by its id; a loaded module is a local model (or remote="local").
        self.nn = TransformersModel(info["source"] if remote is True else hf_model, tokenizer=tokenizer)

    def _hf_model(self):
        if self.remote is True:
            raise PivotlensError("generation and gradients run on a local model; load it without remote=True")
        return self._model

    def _trace(self, enc: Encoded):
        return self.nn.trace(enc.model_inputs(), remote=self.remote)

    def _selected(self, enc: Encoded, layers: list[int], pos: torch.Tensor, reduce):
        """Inside one trace: the residuals ``[layer, batch, k, d]`` at ``pos`` after the requested
        blocks, mapped by ``reduce`` before anything is saved (on NDIF, only that travels back)."""
        from nnsight import save

        blocks = self.parts.block_list(self.nn)
        index = pos.to(enc.input_ids.device).unsqueeze(-1)
        picked = {}
        with torch.no_grad(), self._trace(enc) as tracer:
            for layer in sorted(set(layers)):
                hidden = _block_output(blocks[layer])
                picked[layer] = hidden.gather(1, index.expand(-1, -1, hidden.shape[-1]))
            result = save(reduce(torch.stack([picked[layer] for layer in layers])))
            tracer.stop()
        return result

    def residuals(self, enc, layers=None, positions=(-1,)):
        layers = self.check_layers(layers)
        return self._selected(enc, layers, resolve_positions(positions, enc), lambda stacked: stacked)

    def lens_reads(self, enc: Encoded, reads: Sequence[LensRead], layers=None, *, lens=None) -> list[LensReadout]:
        layers = self.check_layers(layers)
        plan, parts, envoy, vocab_size = ReadPlan.of(reads, enc), self.parts, self.nn, self.vocab_size
        translator = None if lens is None else lens.translator  # plain tensors travel; no pivotlens object does

        def reduce(stacked):
            return plan.readouts(layers, stacked, lambda h: parts.logits(envoy, h), vocab_size, translator)

        return self._selected(enc, layers, plan.columns.expand(enc.batch_size, -1), reduce)

    def _loss(self, enc: Encoded, labels: torch.Tensor) -> torch.Tensor:
        from nnsight import save

        with self._trace(enc):
            loss = save(lm_loss(self.nn.output.logits, labels))
        return loss  # noqa: RET504 (the saved value exists only once the trace has run, at the end of the block)
