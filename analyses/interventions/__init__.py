"""Interventions that change a model (fine-tuning with PROM's pivoted objective, and later region
freezing, layer swapping, soups). Each produces a model folder the loader takes, so every probe
can then measure it. Unlike the rest of ``analyses/``, these work on the ``transformers`` model."""
