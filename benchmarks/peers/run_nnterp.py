"""nnterp 1.3's logit lens (``nnterp.interventions.logit_lens``: every layer's full next-token
distribution at the last position, through nnterp's renamed ``ln_final`` and ``lm_head``).

Runs in the nnterp virtual environment (nnterp 1.3 needs nnsight 0.7): ``python run_nnterp.py JOB OUT``.
"""

from __future__ import annotations

import torch
from common import read_job, run_batches, write_result
from nnterp import StandardizedTransformer
from nnterp.interventions import logit_lens


def main() -> None:
    job, out_path = read_job()
    model = StandardizedTransformer(job["model_path"])

    def per_batch(ids: torch.Tensor) -> torch.Tensor:
        return logit_lens(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    write_result(out_path, *run_batches(job, per_batch))


if __name__ == "__main__":
    main()
