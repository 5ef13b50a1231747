"""Report section: does the model pivot through English for this language, and PROM's lambda,
under PROM's protocol (cloze, 5-shot; PROM footnote 3)."""

from __future__ import annotations

import pandas as pd

from analyses.figures.latent import lens_figure
from analyses.pipelines.explore import explore
from analyses.pipelines.lens import language_prompts, run_languages
from analyses.pipelines.lens_family import lambda_under_lenses
from analyses.report.sections import Page, ReportContext, SectionResult, Verdict, register_section
from analyses.stats.latent import example_items
from analyses.stats.lens_family import decision
from analyses.stats.prom_lambda import analyse, protocol, verdict
from probes.backend.errors import PivotlensError
from probes.backend.lenses import load_lens

#: the explorer pages of the report show the prompt's last tokens (the query after the
#: demonstrations), so that a page stays small; ``pivotlens explore`` shows every position
EXPLORED_TOKENS = 48
EXAMPLE_LABELS = {
    "typical": "a typical prompt",
    "latent_leads": "where English leads most",
    "target_earliest": "where the target leads earliest",
}


def explorer_pages(ctx: ReportContext, lens) -> tuple[list[Page], list[str]]:
    """The lens table's three example prompts (:func:`analyses.stats.latent.example_items`) in the
    explorer, each word scored as the lens probe scored it (a word no token set identifies, by its
    chain), and a note for each example the explorer cannot show (a word the tokenizer cannot write
    at all, as a vocabulary without byte fallback cannot for a script it never saw)."""
    prompts = {p.item: p for p in language_prompts(ctx.lang)}
    pages, notes = [], []
    for row in example_items(lens).itertuples():
        prompt = prompts[str(row.item)]
        try:
            found = explore(
                ctx.backend,
                prompt.text,
                lens=ctx.lenses[0],
                target=prompt.target_word,
                target_lang=prompt.lang,
                latent=prompt.latent_lang,
                latent_word=prompt.latent_word,
                last=EXPLORED_TOKENS,
            )
        except PivotlensError as exc:
            notes.append(f"{EXAMPLE_LABELS[str(row.example)]} ({prompt.concept}) is not in the explorer: {exc}")
            continue
        name = f"{ctx.backend.model_name.replace('/', '_')}__explore_{row.example}.html"
        label = f"{EXAMPLE_LABELS[str(row.example)]} ({prompt.concept}; its last {EXPLORED_TOKENS} tokens)"
        pages.append(Page(name, label, found.figure(), found.page_title))
    return pages, notes


def _pivot_answer(row, lang: str) -> str:
    if pd.isna(row["lambda"]):
        return (
            f"{verdict(row)}: at layer {row['layer']} mean P({row['latent']}) = {row['mean_p_latent']:.3g} and "
            f"mean P({lang}) = {row['mean_p_target']:.3g} are both below the floor; an empty lens is not evidence of "
            "a pivot"
        )
    borderline = " (borderline)" if row["borderline"] else ""
    return (
        f"{'yes' if row['pivot'] else 'no'}{borderline}: at layer {row['layer']} mean P({row['latent']}) = "
        f"{row['mean_p_latent']:.3g} vs mean P({lang}) = {row['mean_p_target']:.3g}"
    )


def _confidence(row) -> str:
    if pd.isna(row["lambda"]):
        return "undecided (empty lens)"
    return "borderline" if row["borderline"] else "decided at 95%"


@register_section("lens", order=10)
def lens_section(ctx: ReportContext) -> SectionResult:
    lens = load_lens(ctx.backend, ctx.lenses[0])
    table = run_languages(
        ctx.backend,
        [ctx.lang],
        store=ctx.store,
        limit=40 if ctx.quick else None,
        batch_size=ctx.batch_size,
        progress=False,
        lens=lens,
    )
    results = analyse(table, n_layers=ctx.backend.n_layers)
    row = results.lambdas.iloc[0]
    summary = results.summary.iloc[0]
    how = protocol(row)
    overtake = (
        f"{ctx.lang} overtakes at layer {summary['overtake_layer']}"
        if summary["overtake_layer"] >= 0
        else f"{ctx.lang} never overtakes English"
    )
    dropped = (
        f"{row['n_dropped_copy']} dropped as copies of a word in the prompt, {row['n_dropped_degenerate']} because "
        "the target and English words cannot be told apart; "
        f"{row['share_chain']:.0%} scored by whole-word chain probability"
    )
    verdicts = [
        Verdict(
            "Does the model think in English on the way to this language?",
            _pivot_answer(row, ctx.lang),
            f"English peaks at layer {summary['latent_peak_layer']} ({summary['latent_peak']:.3f}); {overtake}; "
            f"at the output P({ctx.lang}) = {summary['final_p_target']:.3f}; n = {row['n']} prompts ({how}; {dropped}) "
            "(Wendler et al. 2024; PROM footnote 3)",
            f"95% bootstrap CI of P(en) - P({ctx.lang}) at layer {row['layer']}: "
            f"[{row['diff_ci_low']:.3g}, {row['diff_ci_high']:.3g}]"
            + (" (borderline: the data cannot decide)" if row["borderline"] else ""),
        ),
        Verdict(
            "Which lambda should PROM's pivoted objective use?",
            verdict(row),
            f"PROM Sec. 2.3: lambda = 0 where mean P(en) < mean P(target) at layer n (three quarters of the depth), "
            f"measured as PROM does ({how})",
            _confidence(row),
        ),
    ]
    tables = {"lens_curves": results.curves, "lambda": results.lambdas}
    if len(ctx.lenses) > 1:
        dependence, tables["lambda_by_lens"] = _lens_dependence(ctx)
        verdicts.append(dependence)
    figure = lens_figure(
        results.curves,
        ctx.lang,
        title=f"{ctx.backend.model_name}: {lens.name} lens into {ctx.lang}, {how} (95% CI)",
    )
    tables["lens_examples"] = example_items(table)
    result = SectionResult(f"Latent language ({lens.name} lens) and PROM lambda", verdicts, [figure], tables)
    result.pages, notes = explorer_pages(ctx, table)
    result.notes.extend(notes)
    return result


def _lens_dependence(ctx: ReportContext) -> tuple[Verdict, pd.DataFrame]:
    """PROM's decision under every lens of ``ctx.lenses`` and whether it is the same under all."""
    _, lambdas, agreement = lambda_under_lenses(
        ctx.backend,
        list(ctx.lenses),
        [ctx.lang],
        store=ctx.store,
        limit=40 if ctx.quick else None,
        batch_size=ctx.batch_size,
        progress=False,
    )
    row = agreement.iloc[0]
    each = "; ".join(
        f"{r.lens}: {decision(r.pivot)} ({r.mean_p_latent:.3g} vs {r.mean_p_target:.3g})" for r in lambdas.itertuples()
    )
    alone = f"; the decision of {row['only_under']} holds under that lens only" if row["only_under"] else ""
    verdict = Verdict(
        "Does PROM's decision depend on the lens?",
        ("no: the same under every lens" if row["same_under_every_lens"] else "yes: the lenses disagree") + alone,
        f"mean P(en) vs mean P({ctx.lang}) at layer {int(lambdas['layer'].iloc[0])}: {each} "
        "(linear: Din et al. 2023; tuned: Belrose et al. 2023)",
        "per-lens bootstrap CIs in lambda_by_lens",
    )
    return verdict, lambdas
