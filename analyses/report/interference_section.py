"""Report section: do English and target-language gradients fight each other, and where
(PROM Sec. 2.1, Fig. 2; docs/methods/prom.md)."""

from __future__ import annotations

from analyses.figures.interference import cosine_figure
from analyses.pipelines.interference import InterferenceSetup, instruction_split, measure
from analyses.report.sections import ReportContext, SectionResult, Verdict, register_section
from analyses.stats.interference import last_layer_table, summarize
from probes.inputs.instruction_data import INSTRUCTIONS


@register_section("interference", order=30)
def interference_section(ctx: ReportContext) -> SectionResult:
    result = SectionResult("Gradient interference with English (PROM)")
    langs = set(instruction_split(INSTRUCTIONS)["lang"])
    if ctx.lang not in langs:
        result.notes.append(
            f"no parallel instructions in {ctx.lang} ({INSTRUCTIONS.name} has {', '.join(sorted(langs))})"
        )
        return result
    # the blocks only: the per-block curves do not depend on it, and the tied embedding's
    # gradient (the largest tensor) stays out of memory
    setup = InterferenceSetup(
        "en",
        ctx.lang,
        k=2 if ctx.quick else 6,
        batch_size=4,
        # SmolLM2 spends up to 260 tokens on one Malayalam or Telugu instruction (its byte-level
        # vocabulary is English-centric); 128 left no response token there and stopped the report
        max_length=384,
        split="train",
        params="blocks",
    )
    table = measure(ctx.backend, setup, store=ctx.store, progress=False)
    summary = summarize(table)
    blocks = summary[(summary["module"] == "all") & summary["layer"].notna()]
    last = last_layer_table(summary)
    last = last[last["module"] == "all"].iloc[0]
    conflict = blocks[blocks["ci_high"] < 0]
    n_pairs = int(blocks["n"].max())
    result.verdicts.append(
        Verdict(
            f"Do English and {ctx.lang} training signals fight each other?",
            f"yes, in layer{'s' if len(conflict) > 1 else ''} " + ", ".join(str(int(v)) for v in conflict["layer"])
            if len(conflict)
            else "no significant conflict in any layer",
            f"last block ({int(last['layer'])}): mean cosine {last['mean']:.2f}; lowest block "
            f"{int(blocks['layer'].iloc[blocks['mean'].argmin()])} ({blocks['mean'].min():.2f}); "
            f"{n_pairs} batch pairs of 4 instructions (mean loss over response tokens)",
            f"95% Student-t interval at the last block [{last['ci_low']:.2f}, {last['ci_high']:.2f}]; "
            f"conflict = the whole interval below 0; per-block intervals, not corrected for testing {len(blocks)} "
            f"blocks",
        )
    )
    result.figures.append(
        cosine_figure(blocks, title=f"{ctx.backend.model_name}: gradient cosine en vs {ctx.lang} per block (95% CI)")
    )
    result.tables = {"interference_layers": blocks}
    return result
