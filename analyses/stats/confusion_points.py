"""Language confusion from the confusion probe's tables (Marchisio et al. 2024, Sec. 5-6, Tables 7-11).

* :func:`completions_table`: the probe's steps -> completions in the benchmark's output format.
* :func:`cp_statistics`: mean entropy (bits) and nucleus size at confusion points (@CP), at
  the other steps (¬@CP) and overall, for completions with and without a CP (the paper's
  Table 7), with 95% cluster-bootstrap intervals (completions resampled, since the steps of
  one completion are not independent).
* :func:`cp_contrast`: entropy and nucleus size at each CP minus the same completion's other
  steps, and minus the same step index in completions without a CP (many CPs are the first
  token, where every distribution is flat); mean differences with bootstrap intervals.
* :func:`lens_summary`: the logit lens at CPs per layer (probability and rank of the CP token).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analyses.stats.intervals import bootstrap_indices, bootstrap_mean_interval, percentile_interval

STATISTICS = ("entropy_bits", "nucleus_size")
GROUPS = ("has_cp", "no_cp", "all")
POSITIONS = ("overall", "at_cp", "not_at_cp")


def completions_table(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per completion in the benchmark's output format (``id, model, completion, task,
    source, language``), plus the probe's ``error_type`` and ``has_cp``."""
    first = steps.sort_values("step").groupby("item", sort=False).first().reset_index()
    table = pd.DataFrame(
        {
            "id": first["row"].astype(int),
            "model": first["model"],
            "completion": first["completion"],
            "task": first["task"],
            "source": first["source"],
            "language": first["lang"],
            "error_type": first["error_type"],
            "has_cp": first["has_cp"].astype(bool),
        }
    )
    return table.sort_values(["task", "source", "language", "id"]).reset_index(drop=True)


def cluster_bootstrap_mean(
    values: np.ndarray, clusters: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Pooled mean of ``values`` and its percentile interval when whole clusters (completions)
    are resampled with replacement: ``(mean, low, high)``."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    codes, index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(codes))
    counts = np.bincount(index, minlength=len(codes)).astype(float)
    resamples = bootstrap_indices(len(codes), n_boot, seed)
    means = sums[resamples].sum(axis=1) / np.maximum(counts[resamples].sum(axis=1), 1)
    return (float(values.mean()), *percentile_interval(means, level))


def cp_statistics(
    steps: pd.DataFrame, by: Sequence[str] = ("model", "task"), *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Marchisio et al.'s Table 7 as a tidy table: for each ``by`` group, completion group
    (``has_cp``, ``no_cp``, ``all``), position (``overall``, ``at_cp``, ``not_at_cp``) and
    statistic (``entropy_bits``, ``nucleus_size``): the mean over steps, its 95% cluster
    bootstrap interval, and the numbers of steps and completions. Only steps inside the
    completion count (``in_completion``)."""
    inside = steps[steps["in_completion"]]
    records = []
    for group_key, frame in inside.groupby(list(by), sort=True):
        key = group_key if isinstance(group_key, tuple) else (group_key,)
        for group in GROUPS:
            members = frame if group == "all" else frame[frame["has_cp"] == (group == "has_cp")]
            for position in POSITIONS:
                if position == "overall":
                    rows = members
                else:
                    rows = members[members["is_confusion_point"] == (position == "at_cp")]
                for statistic in STATISTICS:
                    mean, low, high = cluster_bootstrap_mean(
                        rows[statistic].to_numpy(), rows["item"].to_numpy(), n_boot=n_boot, seed=seed
                    )
                    records.append(
                        {
                            **dict(zip(by, key)),
                            "group": group,
                            "position": position,
                            "statistic": statistic,
                            "mean": mean,
                            "ci_low": low,
                            "ci_high": high,
                            "n_steps": len(rows),
                            "n_completions": rows["item"].nunique(),
                        }
                    )
    return pd.DataFrame.from_records(records)


def table7(stats: pd.DataFrame, by: Sequence[str] = ("model", "task")) -> pd.DataFrame:
    """:func:`cp_statistics` laid out like the paper's Table 7: one row per ``by`` group and
    completion group, columns ``<statistic> <position>`` holding ``mean [low, high]``."""
    cell = stats.assign(
        value=[
            "-" if np.isnan(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            for m, lo, hi in zip(stats["mean"], stats["ci_low"], stats["ci_high"])
        ],
        column=stats["statistic"] + " " + stats["position"],
    )
    wide = cell.pivot_table(index=[*by, "group"], columns="column", values="value", aggfunc="first", sort=False)
    order = [f"{s} {p}" for s in STATISTICS for p in POSITIONS]
    return wide[order].reset_index()


def cp_contrast(
    steps: pd.DataFrame, by: Sequence[str] = ("model", "task"), *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Is the distribution flatter at confusion points? Per ``by`` group and statistic, over the
    completions that have a CP, the statistic at the CP minus two baselines, each with its mean
    and 95% bootstrap interval over CPs:

    * ``within``: the mean over the same completion's other in-completion steps (the paper's
      @CP vs ¬@CP, paired per completion);
    * ``same_step``: the mean at the same step index over completions without a CP. Many CPs
      are the first generated token, where every completion's distribution is flattest, so
      this baseline separates "confusion" from "start of the answer".

    Also ``share_first_step``: the share of CPs at step 0.
    """
    inside = steps[steps["in_completion"]]
    records = []
    for group_key, frame in inside.groupby(list(by), sort=True):
        key = group_key if isinstance(group_key, tuple) else (group_key,)
        with_cp = frame[frame["has_cp"]]
        cps = with_cp[with_cp["is_confusion_point"]].set_index("item")
        for statistic in STATISTICS:
            at_cp = cps[statistic]
            within = with_cp[~with_cp["is_confusion_point"]].groupby("item")[statistic].mean().reindex(at_cp.index)
            by_step = frame[~frame["has_cp"]].groupby("step")[statistic].mean()
            same_step = pd.Series(cps["step"].map(by_step).to_numpy(), index=at_cp.index)
            record = {
                **dict(zip(by, key)),
                "statistic": statistic,
                "n_cp": len(at_cp),
                "share_first_step": float((cps["step"] == 0).mean()) if len(cps) else float("nan"),
            }
            for baseline, values in (("within", within), ("same_step", same_step)):
                diff = (at_cp - values).dropna().to_numpy()
                low, high = (
                    bootstrap_mean_interval(diff, n_boot=n_boot, seed=seed) if len(diff) > 1 else (float("nan"),) * 2
                )
                record |= {
                    f"{baseline}_n": len(diff),
                    f"{baseline}_difference": float(diff.mean()) if len(diff) else float("nan"),
                    f"{baseline}_low": low,
                    f"{baseline}_high": high,
                    f"{baseline}_share_above": float((diff > 0).mean()) if len(diff) else float("nan"),
                }
            records.append(record)
    return pd.DataFrame.from_records(records)


def lens_summary(
    lens: pd.DataFrame, by: Sequence[str] = ("model", "task"), *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per ``by`` group and layer: mean lens probability of the CP token with a 95% bootstrap
    interval over CPs, the share of CPs where it is the layer's top-1, and the mean entropy."""
    records = []
    for key, frame in lens.groupby([*by, "layer"], sort=True):
        p = frame["p_cp_token"].to_numpy()
        low, high = bootstrap_mean_interval(p, n_boot=n_boot, seed=seed) if len(p) > 1 else (float("nan"), float("nan"))
        records.append(
            {
                **dict(zip([*by, "layer"], key)),
                "n_cp": len(p),
                "p_cp_token": float(p.mean()),
                "ci_low": low,
                "ci_high": high,
                "top1_share": float((frame["cp_token_rank"] == 0).mean()),
                "entropy_bits": float(frame["entropy_bits"].mean()),
            }
        )
    return pd.DataFrame.from_records(records)
