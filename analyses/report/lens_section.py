"""Report section: does the model pivot through English for this language, and PROM's lambda."""

from __future__ import annotations

from analyses.figures.latent import lens_figure
from analyses.pipelines.lens import run_languages
from analyses.report.sections import ReportContext, SectionResult, Verdict, register_section
from analyses.stats.prom_lambda import analyse


@register_section("lens", order=10)
def lens_section(ctx: ReportContext) -> SectionResult:
    table = run_languages(
        ctx.backend,
        [ctx.lang],
        store=ctx.store,
        limit=40 if ctx.quick else None,
        batch_size=ctx.batch_size,
        progress=False,
    )
    results = analyse(table, n_layers=ctx.backend.n_layers)
    row = results.lambdas.iloc[0]
    summary = results.summary.iloc[0]
    # a borderline decision is the rule's point estimate, not an answer: say so in the answer itself
    borderline = " (borderline)" if row["borderline"] else ""
    pivot = ("yes" if row["pivot"] else "no") + borderline
    overtake = (
        f"{ctx.lang} overtakes at layer {summary['overtake_layer']}"
        if summary["overtake_layer"] >= 0
        else f"{ctx.lang} never overtakes English"
    )
    verdicts = [
        Verdict(
            "Does the model think in English on the way to this language?",
            f"{pivot}: at layer {row['layer']} mean P(en) = {row['mean_p_en']:.3g} vs mean P({ctx.lang}) = {row['mean_p_target']:.3g}",
            f"English peaks at layer {summary['latent_peak_layer']} ({summary['latent_peak']:.3f}); {overtake}; "
            f"at the output P({ctx.lang}) = {summary['final_p_target']:.3f}; n = {row['n']} translation prompts "
            "(Wendler et al. 2024)",
            f"95% bootstrap CI of P(en) - P({ctx.lang}) at layer {row['layer']}: [{row['diff_ci_low']:.3g}, {row['diff_ci_high']:.3g}]"
            + (" (borderline: the data cannot decide)" if row["borderline"] else ""),
        ),
        Verdict(
            "Which lambda should PROM's pivoted objective use?",
            f"lambda = {row['lambda']:g}{borderline}",
            "PROM Sec. 2.3: lambda = 0 where mean P(en) < mean P(target) at layer n (three quarters of the depth)",
            "borderline" if row["borderline"] else "decided at 95%",
        ),
    ]
    figure = lens_figure(
        results.curves, ctx.lang, title=f"{ctx.backend.model_name}: logit lens into {ctx.lang} (95% CI)"
    )
    return SectionResult(
        "Latent language (logit lens) and PROM lambda",
        verdicts,
        [figure],
        {"lens_curves": results.curves, "lambda": results.lambdas},
    )
