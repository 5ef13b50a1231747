"""The linguistic-regions job (Zhang et al. 2024, Sec. 3), shared by the CLI and the notebook:
importance per language (through the results store), regions and their masks, the removal
table (perplexity per language with each region zeroed; Tables 1 and 5), structured removal of
whole dimensions (Table 3), single-dimension perturbation (Fig. 3), and their figures.

Corpus use (documented in ``probes.inputs.lm_corpus``): importance is accumulated on the first
``n_accumulation`` sentences of each language's accumulation part, perplexity measured on the
first ``n_heldout`` sentences of its held-out part; each sentence is cut to ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from analyses.figures import save_figure
from analyses.figures.importance import (
    concentration_figure,
    dimension_figure,
    freeze_figure,
    importance_map_figure,
    mask_figure,
    monolingual_figure,
    perturbation_figure,
    removal_figure,
    structure_figure,
)
from analyses.interventions.regions import How, region_removed
from analyses.stats.regions import (
    Masks,
    concentration_table,
    core_scores,
    dimension_counts,
    dimension_region,
    load_masks,
    mask_density,
    monolingual,
    random_like,
    region_table,
    save_masks,
    select,
    structured_region,
)
from probes.backend import Backend
from probes.backend.resume import collect
from probes.backend.scopes import ParameterScope
from probes.backend.store import ResultsStore, Run, provenance
from probes.importance import Mode, Scope, load_importance, run_importance
from probes.inputs.lm_corpus import SENTENCES, load_corpus
from probes.perplexity import PERPLEXITY_COLUMNS, run_perplexity

PAPER_LANGS = ("ar", "es", "ru", "zh", "ko", "vi")  # the six languages of Zhang et al. 2024
REMOVAL_COLUMNS = {
    "region": "what was removed: none (base), core-top/-bottom/-random (Table 1) or mono-top/-random (Table 5)",
    "scope": "none, core (sum over core languages of |I|) or monolingual (own top minus the others' top)",
    "selection": "none, top, bottom or random",
    "fraction": "k: share of each tensor's entries selected before deduplication (0 for none)",
    "removed_lang": "language whose monolingual region was removed; '+'-joined core languages for core",
    "n_removed": "parameter entries set to zero",
    "lang": "language of the held-out sentences",
    "perplexity": "exp(mean token NLL) on the held-out sentences",
    "nll": "mean negative log-likelihood per predicted token (nats)",
    "n_tokens": "predicted tokens",
}


@dataclass(frozen=True)
class CorpusUse:
    """Which sentences the job uses: the first ``n_accumulation`` of each language's
    accumulation part and the first ``n_heldout`` of its held-out part, cut to ``max_tokens``."""

    path: Path = SENTENCES
    n_accumulation: int = 64
    n_heldout: int = 16
    max_tokens: int = 48

    def texts(self, langs: Sequence[str], part: str) -> dict[str, list[str]]:
        corpus = load_corpus(self.path)
        n = self.n_accumulation if part == "accumulation" else self.n_heldout
        return {lang: corpus.texts(lang, part)[:n] for lang in langs}  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        return {
            "corpus": str(self.path),
            "n_accumulation": self.n_accumulation,
            "n_heldout": self.n_heldout,
            "max_tokens": self.max_tokens,
        }


def importance_for(
    backend: Backend,
    langs: Sequence[str],
    use: CorpusUse,
    *,
    batch_size: int = 8,
    scope: Scope = "layers",
    mode: Mode = "sum_then_abs",
    store: ResultsStore | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The importance probe per language (one resumable store run each); ``attrs["files"]``
    maps each language to its float32 safetensors map."""
    return run_importance(
        backend,
        use.texts(langs, "accumulation"),
        scope=scope,
        mode=mode,
        batch_size=batch_size,
        max_tokens=use.max_tokens,
        store=store or ResultsStore(),
        data_files=[use.path],
        progress=progress,
    )


@dataclass(frozen=True)
class Region:
    """A region to remove; ``load()`` gives its masks (read from disk or derived on demand)."""

    label: str
    scope: str
    selection: str
    removed_lang: str
    load: Callable[[], Masks] = field(repr=False, compare=False)


@dataclass
class RegionSet:
    regions: list[Region]
    sizes: pd.DataFrame  # region_table: entries selected per region and tensor
    core_global: pd.DataFrame  # region_table of the global top-k of the core score (for the map)
    concentration: pd.DataFrame
    dimensions: pd.DataFrame  # per region: dimension_counts
    density: pd.DataFrame  # mask_density of the core region in the o/down matrices of a few layers


def build_regions(
    files: Mapping[str, Path],
    *,
    core_langs: Sequence[str],
    fraction: float,
    d_model: int,
    scopes: Mapping[str, ParameterScope],
    masks_dir: Path,
    seed: int = 0,
    metadata: Mapping[str, object] | None = None,
) -> RegionSet:
    """Core (top/bottom/random of ``sum_{core langs} |I|``) and monolingual (top, and a random
    control of the same size per tensor) regions, per tensor at ``fraction``. Core and
    monolingual-top masks are written to ``masks_dir`` as packed bits; the random monolingual
    controls are re-derived from the seed. ``scopes`` (``Backend.parameter_scopes()``) name each
    tensor's layer and module in the tables."""
    missing = [lang for lang in core_langs if lang not in files]
    if missing:
        raise ValueError(f"core languages {missing} have no importance map; add them to --langs")
    meta = {**dict(metadata or {}), "fraction": fraction, "seed": seed, "core_langs": list(core_langs)}
    tops = {lang: select(load_importance(path).importance, fraction, "top", seed=seed) for lang, path in files.items()}
    core = core_scores(load_importance(files[lang]).importance for lang in core_langs)
    core_label = "+".join(core_langs)
    regions: list[Region] = []
    sizes = []

    def keep(label: str, scope: str, selection: str, removed_lang: str, masks: Masks) -> None:
        path = save_masks(
            masks_dir / f"{label}.safetensors", masks, {**meta, "region": label, "removed_lang": removed_lang}
        )
        regions.append(Region(label, scope, selection, removed_lang, lambda: load_masks(path)[0]))
        sizes.append(region_table({label: masks}))

    core_masks = {}
    for selection in ("top", "bottom", "random"):
        core_masks[selection] = select(core, fraction, selection, seed=seed)  # type: ignore[arg-type]
        keep(f"core-{selection}", "core", selection, core_label, core_masks[selection])
    core_global = region_table({"core-top-global": select(core, fraction, "top", per="global")})
    core_global[["layer", "module"]] = [_located(scopes[n]) for n in core_global["param"]]
    del core
    for lang in files:
        mono = monolingual(tops, lang)
        keep(f"mono-top-{lang}", "monolingual", "top", lang, mono)
        path = masks_dir / f"mono-top-{lang}.safetensors"
        regions.append(
            Region(
                f"mono-random-{lang}",
                "monolingual",
                "random",
                lang,
                lambda path=path: random_like(load_masks(path)[0], seed=seed),
            )
        )
    examples = {"core-top": core_masks["top"], "core-random": core_masks["random"]}
    return RegionSet(
        regions=regions,
        sizes=pd.concat(sizes, ignore_index=True),
        core_global=core_global,
        concentration=concentration_table(examples, lambda n: _located(scopes[n])),
        dimensions=pd.concat(
            [dimension_counts(m, d_model).assign(region=label) for label, m in examples.items()], ignore_index=True
        ),
        density=_density_examples(core_masks["top"], scopes),
    )


def _located(where: ParameterScope) -> tuple[int, str]:
    """``(layer, module)`` as the region tables write them (layer -1 outside the blocks)."""
    return where.block_index, where.role


def _density_examples(masks: Masks, scopes: Mapping[str, ParameterScope]) -> pd.DataFrame:
    """Block-averaged images of the attention output and MLP down matrices at the first,
    middle and last layer (where the paper shows the region's stripes, Fig. 2)."""
    located = {name: _located(scopes[name]) for name in masks}
    layers = sorted({layer for layer, _ in located.values() if layer >= 0})
    if not layers:
        return pd.DataFrame()
    wanted = {layers[0], layers[len(layers) // 2], layers[-1]}
    frames = [
        mask_density(masks[name], bins=64).assign(param=name, layer=layer, module=module)
        for name, (layer, module) in located.items()
        if layer in wanted and module in ("self_attn.o_proj", "mlp.down_proj")
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass(frozen=True)
class Change:
    """One model to measure: ``masks()`` changed ``how`` (``None``: the model as it is), its rows
    labelled with ``columns`` (``region`` first, the label that keys the stored rows)."""

    columns: Mapping[str, str | int | float]
    masks: Callable[[], Masks | None] = field(repr=False, compare=False)
    how: How = "zero"

    @property
    def label(self) -> str:
        return str(self.columns["region"])


UNCHANGED = Change(
    {"region": "none", "scope": "none", "selection": "none", "fraction": 0.0, "removed_lang": ""}, lambda: None
)


def _perplexity_with(
    backend: Backend, change: Change, texts: Mapping[str, Sequence[str]], *, batch_size: int, max_tokens: int, seed: int
) -> pd.DataFrame:
    """Perplexity per language of the model with ``change`` applied; the weights are restored
    on leaving, even after an error (:func:`region_removed`)."""
    masks = change.masks()
    changed = region_removed(backend.named_parameters(), masks, change.how, seed=seed) if masks else nullcontext()
    with changed:
        table = run_perplexity(backend, texts, batch_size=batch_size, max_tokens=max_tokens, progress=False)
    table = table.assign(**change.columns, n_removed=int(sum(int(m.sum()) for m in masks.values())) if masks else 0)
    table["item"] = [f"{change.label}|{lang}" for lang in table["lang"]]
    return table


def _measure_changes(
    backend: Backend,
    changes: Sequence[Change],
    heldout: Mapping[str, Sequence[str]],
    *,
    batch_size: int = 8,
    max_tokens: int = 48,
    run: Run | None = None,
    seed: int = 0,
    desc: str = "regions",
    progress: bool = True,
) -> pd.DataFrame:
    """Perplexity per held-out language with each change applied in turn (one row per change
    and language, keyed ``region|lang``); with ``run``, stored rows are skipped on a re-run."""
    items = [(change, lang) for change in changes for lang in heldout]

    def compute(batch: list[tuple[Change, str]]) -> pd.DataFrame:
        frames = []
        for _, group in groupby(batch, key=lambda item: item[0].label):
            pairs = list(group)
            texts = {lang: heldout[lang] for _, lang in pairs}
            options = {"batch_size": batch_size, "max_tokens": max_tokens, "seed": seed}
            frames.append(_perplexity_with(backend, pairs[0][0], texts, **options))
        return pd.concat(frames, ignore_index=True)

    return collect(
        items,
        compute,
        key=lambda item: f"{item[0].label}|{item[1]}",
        columns=[*PERPLEXITY_COLUMNS, "n_removed"],
        run=run,
        batch_size=len(heldout),  # one change at a time: its region is applied once for all languages
        desc=f"{desc} {backend.model_name}",
        unit="lang",
        progress=progress,
    )


def removal_table(
    backend: Backend,
    regions: Sequence[Region],
    heldout: Mapping[str, Sequence[str]],
    *,
    fraction: float,
    batch_size: int = 8,
    max_tokens: int = 48,
    run: Run | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Perplexity per held-out language with nothing removed and with each region zeroed
    (columns ``REMOVAL_COLUMNS``); with ``run``, finished regions are skipped on a re-run."""
    changes = [UNCHANGED] + [
        Change(
            {
                "region": region.label,
                "scope": region.scope,
                "selection": region.selection,
                "fraction": fraction,
                "removed_lang": region.removed_lang,
            },
            region.load,
        )
        for region in regions
    ]
    table = _measure_changes(
        backend,
        changes,
        heldout,
        batch_size=batch_size,
        max_tokens=max_tokens,
        run=run,
        desc="removal",
        progress=progress,
    )
    return table[[*REMOVAL_COLUMNS, "n_sentences"]]


def structure_table(
    backend: Backend,
    core_top: Masks,
    heldout: Mapping[str, Sequence[str]],
    *,
    n_values: Sequence[int] = (1, 5),
    which: Sequence[Literal["top", "middle", "bottom", "random"]] = ("top", "middle", "random"),
    batch_size: int = 8,
    max_tokens: int = 48,
    run: Run | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Structured removal (Table 3): in every matrix, zero the ``n`` rows/columns along the
    hidden dimension holding the most (``top``), a median number (``middle``), or random
    ones, of the core region's entries; perplexity per language."""
    changes = [
        Change(
            {"region": f"dims-{kind}-{n}", "selection": kind, "n_dims": n},
            partial(structured_region, core_top, n, kind, backend.d_model, seed=seed),
        )
        for n in n_values
        for kind in which
    ]
    return _measure_changes(
        backend,
        changes,
        heldout,
        batch_size=batch_size,
        max_tokens=max_tokens,
        run=run,
        seed=seed,
        desc="structured removal",
        progress=progress,
    )


def perturbation_table(
    backend: Backend,
    dimensions: pd.DataFrame,
    template: Masks,
    heldout: Mapping[str, Sequence[str]],
    *,
    n_top: int = 3,
    n_random: int = 2,
    batch_size: int = 8,
    max_tokens: int = 48,
    run: Run | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Single-dimension perturbation (Fig. 3): re-initialise one hidden dimension in every
    layer (``N(0, std)`` of each tensor), for the ``n_top`` dimensions holding most of the core
    region and ``n_random`` random others; perplexity per language."""
    ranked = dimensions.sort_values("count", ascending=False)["dim"].tolist()
    generator = torch.Generator().manual_seed(seed)
    rest = ranked[max(20, n_top) :]
    picks = [("top", d) for d in ranked[:n_top]]
    picks += [("random", rest[i]) for i in torch.randperm(len(rest), generator=generator)[:n_random].tolist()]
    changes = [
        Change(
            {"region": f"dim-{dim}", "selection": kind, "dim": int(dim), "dim_rank": ranked.index(dim) + 1},
            partial(dimension_region, template, [dim], backend.d_model),
            how="perturb",
        )
        for kind, dim in picks
    ]
    return _measure_changes(
        backend,
        changes,
        heldout,
        batch_size=batch_size,
        max_tokens=max_tokens,
        run=run,
        seed=seed,
        desc="perturbation",
        progress=progress,
    )


def job_run(
    store: ResultsStore, probe: str, params: dict[str, object], backend: Backend, use: CorpusUse, seed: int
) -> Run:
    """A resumable results-store run for one table of the job."""
    return store.run(provenance(probe, {**params, **use.describe()}, backend.describe(), [use.path], seed=seed))


def write_figures(out: Path, *, model: str) -> list[Path]:
    """The figures of the importance folder ``out`` (``model`` names the model in their titles),
    each drawn from the tables ``pivotlens importance``, ``regions`` and ``region-freeze`` wrote
    there, when they are there: the importance map, the regions' masks, concentration and
    dimensions, the removal tables (Tables 1, 3 and 5), the dimension perturbation (Fig. 3) and
    the freeze demonstration (Fig. 6). HTML links plotly.js from its CDN (a few kB, fit to
    commit); a PNG beside it."""

    def table(name: str) -> pd.DataFrame | None:
        return pd.read_csv(out / f"{name}.csv") if (out / f"{name}.csv").is_file() else None

    figures = {}
    summary, removal = table("importance_summary"), table("removal")
    if summary is not None:
        figures["importance_map"] = importance_map_figure(summary, table("region_core_global"), model=model)
    for name, draw, source in (
        ("region_masks", mask_figure, "region_density"),
        ("region_concentration", concentration_figure, "region_concentration"),
        ("region_dimensions", dimension_figure, "region_dimensions"),
        ("removal_core", removal_figure, "removal"),
        ("removal_monolingual", monolingual_figure, "removal"),
        ("freeze_demo", freeze_figure, "freeze_demo"),
    ):
        if (data := table(source)) is not None:
            figures[name] = draw(data, model=model)
    if removal is not None:
        base = removal[removal["region"] == "none"]
        for name, draw in (("structured_removal", structure_figure), ("dimension_perturbation", perturbation_figure)):
            if (data := table(name)) is not None:
                figures[name] = draw(data, base, model=model)
    return [path for name, fig in figures.items() for path in save_figure(fig, out / name)]
