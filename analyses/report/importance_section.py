"""Report section: which parameters and layers carry the language (Zhang et al. 2024, linguistic
regions; docs/methods/linguistic-regions.md), and so which layers a layer swap should take from a language expert."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from analyses.pipelines.regions import CorpusUse, importance_for
from analyses.report.sections import ReportContext, SectionResult, Verdict, register_section
from analyses.stats.regions import monolingual, region_table, select
from probes.backend.scopes import ParameterScope
from probes.importance import load_importance
from probes.inputs.lm_corpus import load_corpus

FRACTION = 0.01  # the paper's 1% per tensor


def region_by_layer(sizes: pd.DataFrame, scopes: Mapping[str, ParameterScope]) -> pd.DataFrame:
    """Share of each block's entries that lie in a region, from its :func:`region_table`
    (``layer, n_region, numel, share``; layer -1 for parameters outside the blocks; ``scopes``
    from ``Backend.parameter_scopes()``)."""
    layer = sizes["param"].map(lambda name: scopes[str(name)].block_index)
    table = sizes.assign(layer=layer).groupby("layer", sort=True)[["selected", "numel"]].sum().reset_index()
    table = table.rename(columns={"selected": "n_region"})
    table["share"] = table["n_region"] / table["numel"]
    return table


@register_section("importance", order=40, family="regions")
def importance_section(ctx: ReportContext) -> SectionResult:
    result = SectionResult("Which parameters carry the language (linguistic regions)")
    if ctx.lang == "en" or ctx.lang not in load_corpus().langs:
        result.notes.append(
            f"no language-specific region for {ctx.lang}: it needs {ctx.lang} sentences and English "
            "ones to subtract (data/sentences.csv)"
        )
        return result
    use = CorpusUse(n_accumulation=16 if ctx.quick else 64, n_heldout=8 if ctx.quick else 16)
    table = importance_for(
        ctx.backend, [ctx.lang, "en"], use, batch_size=ctx.batch_size // 2 or 1, store=ctx.store, progress=False
    )
    maps = {lang: load_importance(path).importance for lang, path in table.attrs["files"].items()}
    tops = {lang: select(tensors, FRACTION, "top") for lang, tensors in maps.items()}
    own = monolingual(tops, ctx.lang)
    layers = region_by_layer(region_table({ctx.lang: own}), ctx.backend.parameter_scopes())
    layers = layers[layers["layer"] >= 0]
    ranked = layers.sort_values("share", ascending=False)
    top3 = ranked.head(3)
    depth = ctx.backend.n_layers
    edge = layers["layer"].isin([*range(depth // 4), *range(depth - depth // 4, depth)])
    edge_share = layers.loc[edge, "n_region"].sum() / max(layers["n_region"].sum(), 1)
    result.verdicts.append(
        Verdict(
            f"Which layers carry {ctx.lang} (its region apart from English)?",
            "layers " + ", ".join(str(int(v)) for v in sorted(top3["layer"])),
            f"the three layers with the largest shares of the region, largest first: "
            f"{', '.join(str(int(v)) for v in top3['layer'])}; "
            f"top {FRACTION:.0%} of each tensor by importance |theta * grad L| on {use.n_accumulation} {ctx.lang} "
            f"sentences, "
            f"minus English's top {FRACTION:.0%}: {int(layers['n_region'].sum()):,} entries; "
            f"{edge_share:.0%} of them in the bottom and top quarters of the depth (where layer swapping takes the "
            "language expert's layers)",
            "one corpus sample; the ranking of layers with close shares can change with the sample",
        )
    )
    fig = go.Figure(go.Bar(x=layers["layer"], y=100 * layers["share"], marker_color="#1f77b4", name=ctx.lang))
    fig.update_layout(
        title=f"{ctx.backend.model_name}: {ctx.lang}-specific region per layer (top {FRACTION:.0%} minus English's)",
        xaxis_title="layer (0-based block)",
        yaxis_title="share of the block's entries (%)",
        template="simple_white",
        width=900,
        height=420,
    )
    result.figures.append(fig)
    result.tables = {"region_layers": layers}
    return result
