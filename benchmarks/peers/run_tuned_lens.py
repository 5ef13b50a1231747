"""tuned-lens 0.2's logit lens (``tuned_lens.nn.lenses.LogitLens``), the way its
``PredictionTrajectory`` reads a model: ``output_hidden_states=True``, the lens on every block's
output but the last, and the model's own logits for the last block (Hugging Face's last hidden
state already has the final norm applied).

Runs in the tuned-lens virtual environment: ``python run_tuned_lens.py JOB OUT``.
"""

from __future__ import annotations

import torch
from common import read_job, run_batches, write_result
from transformers import AutoModelForCausalLM
from tuned_lens.nn.lenses import LogitLens


def main() -> None:
    job, out_path = read_job()
    model = AutoModelForCausalLM.from_pretrained(job["model_path"], dtype=torch.float32).eval()
    lens = LogitLens.from_model(model)

    def per_batch(ids: torch.Tensor) -> torch.Tensor:
        out = model(input_ids=ids, output_hidden_states=True)
        hidden = out.hidden_states[1:-1]
        layers = [lens(h[:, -1], i).float().softmax(-1) for i, h in enumerate(hidden)]
        layers.append(out.logits[:, -1].float().softmax(-1))
        return torch.stack(layers, 1)

    write_result(out_path, *run_batches(job, per_batch))


if __name__ == "__main__":
    main()
