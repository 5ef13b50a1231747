"""AdaInfer early exit from the exit probe's table (Fan et al. 2024; docs/methods/early-exit.md).

Tables, from the tidy per-(item, layer) table of ``probes.exit_accuracy``:

* accuracy per layer with 95% Wilson intervals (AdaInfer Fig. 1) and the features per layer;
* stopping strategies trained on one split of items and evaluated on the other: AdaInfer's
  rule (stop at the first layer with ``gap >= 0.8``), the rule with its threshold fitted on the
  train split, an SVM (``SVC``, RBF kernel, balanced class weights, each layer classified
  independently) and a linear-chain CRF over the layers (sklearn-crfsuite); next to them the
  full model, a static exit at one layer fitted on the train split, the majority class and an
  oracle (first correct layer; an upper bound that reads the labels);
* exit accuracy, FLOPs ratio (``analyses.stats.flops``), mean and variance of the layers run (AdaInfer
  Tables 2, 3 and 6), per task and language and pooled, in four generalisation settings:
  intra-task, inter-task, inter-language and inter-model;
* per-layer classification accuracy of each classifier against the majority class on held-out
  (item, layer) samples.

A label ``y = 1`` ("stop") means the layer's top-1 token is the gold answer. Variant ``full``
uses AdaInfer's label and features over the full vocabulary (``correct``, ``gap``, ``top_prob``);
variant ``options`` the ones restricted to the answer tokens (``correct_options``,
``gap_options``, ``top_prob_options``); variant ``full+depth`` (not in AdaInfer) adds the
relative depth of the layer to the ``full`` features.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.stats.flops import DecoderShape, Uncounted
from analyses.stats.intervals import normal_interval, wilson_interval

INSTANCE = ["model", "task", "lang", "item"]


@dataclass(frozen=True)
class Variant:
    """Which label and features a stopper uses."""

    name: str
    target: str
    features: tuple[str, ...]


VARIANTS = {
    "full": Variant("full", "correct", ("gap", "top_prob")),
    "options": Variant("options", "correct_options", ("gap_options", "top_prob_options")),
    # not in AdaInfer: the relative depth layer / (n_layers - 1) as a third feature, so that a
    # per-layer classifier can tell a confident early layer from a confident late one
    "full+depth": Variant("full+depth", "correct", ("gap", "top_prob", "depth")),
}


def with_depth(items: pd.DataFrame) -> pd.DataFrame:
    """Add ``depth = layer / (n_layers - 1)`` per model (comparable across models of different depth)."""
    return items.assign(depth=items["layer"] / items.groupby("model")["layer"].transform("max").clip(lower=1))


# ---- statistics --------------------------------------------------------------------------------


def accuracy_by_layer(items: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per ``(model, task, lang, shots, layer)`` with 95% Wilson intervals (AdaInfer Fig. 1).

    ``accuracy`` is over the full vocabulary (AdaInfer's), ``accuracy_options`` among the answers.
    """
    keys = ["model", "task", "lang", "shots", "layer"]
    out = (
        items.groupby(keys, sort=True)
        .agg(n=("correct", "size"), k=("correct", "sum"), k_options=("correct_options", "sum"))
        .reset_index()
    )
    out["accuracy"] = out["k"] / out["n"]
    out["accuracy_low"], out["accuracy_high"] = wilson_interval(out["k"], out["n"])
    out["accuracy_options"] = out["k_options"] / out["n"]
    out["accuracy_options_low"], out["accuracy_options_high"] = wilson_interval(out["k_options"], out["n"])
    return out.drop(columns=["k", "k_options"])


def features_by_layer(
    items: pd.DataFrame, features: Iterable[str] = ("gap", "top_prob", "gap_options", "top_prob_options")
) -> pd.DataFrame:
    """Mean of each feature per ``(model, task, layer)`` over items and languages, with a normal 95% interval."""
    long = items.melt(id_vars=["model", "task", "layer"], value_vars=list(features), var_name="feature")
    out = long.groupby(["model", "task", "feature", "layer"])["value"].agg(["mean", "std", "size"]).reset_index()
    out["low"], out["high"] = normal_interval(out["mean"], out["std"].fillna(0), out["size"])
    return out.rename(columns={"size": "n"})


def is_test_item(items: pd.DataFrame, test_fraction: float = 0.5, seed: int = 0) -> pd.Series:
    """Seeded split by ``(task, item)``: the translations of an item, and every model, land on the same side."""
    keys = items["task"].astype(str) + "\x1f" + items["item"].astype(str)
    unique = keys.unique()
    draw = {k: int(hashlib.sha256(f"{seed}\x1f{k}".encode()).hexdigest()[:8], 16) / 2**32 for k in unique}
    return keys.map(draw) < test_fraction


# ---- stopping strategies -----------------------------------------------------------------------


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values([*INSTANCE, "layer"], kind="stable").reset_index(drop=True)


def _sequences(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The rows of each instance, in layer order (``frame`` sorted by ``_sorted``)."""
    for _, rows in frame.groupby(INSTANCE, sort=False):
        yield rows


class Stopper(ABC):
    """Decides, per (item, layer) row, whether to stop there; the exit is the first such layer.

    ``uses_lens``: the decision needs the lens readout at every layer it passes (pays the head
    there). ``per_layer``: its decisions are classifications of single layers, scored against
    the labels in the classifier table.
    """

    name: str
    uses_lens: bool = True
    per_layer: bool = True

    def fit(self, train: pd.DataFrame, variant: Variant) -> Stopper:
        return self

    @abstractmethod
    def stop(self, test: pd.DataFrame, variant: Variant) -> np.ndarray:
        """Boolean per row of ``test`` (sorted by instance and layer)."""


class FullModel(Stopper):
    """No early exit: the plain forward pass."""

    name, uses_lens, per_layer = "full model", False, False

    def stop(self, test, variant):
        return (test["layer"] == test.groupby(INSTANCE, sort=False)["layer"].transform("max")).to_numpy()


class Majority(Stopper):
    """The train split's majority label, for every layer: always stop at layer 0, or never stop."""

    name, uses_lens = "majority", False

    def fit(self, train, variant):
        self.label = bool(train[variant.target].mean() > 0.5)
        return self

    def stop(self, test, variant):
        return np.full(len(test), self.label)


class StaticLayer(Stopper):
    """Exit every item at one relative depth: the shallowest whose train accuracy is within
    ``tolerance`` of the last layer's (non-adaptive depth pruning, no per-layer lens). The depth
    is relative (``layer / (n_layers - 1)``), so it carries over to a model of another depth."""

    name, uses_lens, per_layer = "static layer", False, False

    def __init__(self, tolerance: float = 0.01) -> None:
        self.tolerance = tolerance

    def fit(self, train, variant):
        by_depth = with_depth(train).groupby("depth")[variant.target].mean()
        self.depth = float(by_depth.index[(by_depth >= by_depth.iloc[-1] - self.tolerance).to_numpy()].min())
        return self

    def stop(self, test, variant):
        return (with_depth(test)["depth"] >= self.depth - 1e-9).to_numpy()


class GapRule(Stopper):
    """AdaInfer's rule: stop at the first layer whose gap reaches ``threshold`` (paper: 0.8)."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.name = f"rule gap>={threshold:g}"

    def stop(self, test, variant):
        return (test[variant.features[0]] >= self.threshold).to_numpy()


class FittedGapRule(GapRule):
    """The gap rule with the threshold fitted on the train split: the lowest threshold (earliest
    exits) whose train exit accuracy is within ``tolerance`` of the last layer's."""

    def __init__(self, tolerance: float = 0.01) -> None:
        super().__init__(threshold=1.0)
        self.tolerance = tolerance
        self.name = "rule gap (fitted)"

    def fit(self, train, variant):
        train = _sorted(train)
        final = train[train["layer"] == train.groupby(INSTANCE)["layer"].transform("max")][variant.target].mean()
        for threshold in np.round(np.arange(0.0, 1.0001, 0.01), 2):
            self.threshold = float(threshold)
            if exit_rows(train, self.stop(train, variant))[variant.target].mean() >= final - self.tolerance:
                return self
        self.threshold = np.inf  # no threshold keeps the accuracy: never stop early, no lens needed
        self.uses_lens = False
        return self


class SVMStopper(Stopper):
    """AdaInfer's SVM: ``SVC`` (RBF kernel, balanced class weights) on standardised features,
    each layer classified independently; at most ``max_samples`` training rows (seeded draw)."""

    name = "svm"

    def __init__(self, max_samples: int = 4000, seed: int = 0) -> None:
        self.max_samples, self.seed = max_samples, seed

    def fit(self, train, variant):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        if len(train) > self.max_samples:
            train = train.sample(self.max_samples, random_state=self.seed)
        y = train[variant.target].to_numpy(bool)
        self.constant = bool(y[0]) if y.all() or not y.any() else None  # one class only: predict it
        if self.constant is None:
            self.model = make_pipeline(
                StandardScaler(), SVC(kernel="rbf", class_weight="balanced", random_state=self.seed)
            )
            self.model.fit(train[list(variant.features)].to_numpy(), y)
        return self

    def stop(self, test, variant):
        if self.constant is not None:
            return np.full(len(test), self.constant)
        return self.model.predict(test[list(variant.features)].to_numpy()).astype(bool)


def _crf_features(rows: pd.DataFrame, features: tuple[str, ...]) -> list[dict[str, float]]:
    """Per layer: the raw features, their tenth-bins and their change from the previous layer."""
    values = rows[list(features)].to_numpy(float)
    delta = np.vstack([np.zeros((1, values.shape[1])), np.diff(values, axis=0)])
    out = []
    for row, change in zip(values, delta):
        feats: dict[str, float] = {"bias": 1.0}
        for name, value, d in zip(features, row, change):
            feats[name] = float(value)
            feats[f"{name}_bin{min(int(value * 10), 9)}"] = 1.0
            feats[f"{name}_delta"] = float(d)
        out.append(feats)
    return out


class CRFStopper(Stopper):
    """AdaInfer's CRF: a linear-chain CRF over the layers of each item (labels stop/go),
    L-BFGS with elastic-net regularisation (sklearn-crfsuite; it has no class weights)."""

    name = "crf"

    def __init__(self, c1: float = 0.1, c2: float = 0.1, max_iterations: int = 200) -> None:
        self.c1, self.c2, self.max_iterations = c1, c2, max_iterations

    def fit(self, train, variant):
        import sklearn_crfsuite

        train = _sorted(train)
        xs = [_crf_features(rows, variant.features) for rows in _sequences(train)]
        ys = [["stop" if y else "go" for y in rows[variant.target]] for rows in _sequences(train)]
        self.model = sklearn_crfsuite.CRF(
            algorithm="lbfgs", c1=self.c1, c2=self.c2, max_iterations=self.max_iterations, all_possible_transitions=True
        )
        self.model.fit(xs, ys)
        return self

    def stop(self, test, variant):
        xs = [_crf_features(rows, variant.features) for rows in _sequences(test)]
        return np.array([label == "stop" for seq in self.model.predict(xs) for label in seq])


class Oracle(Stopper):
    """Stop at the first layer whose prediction is correct (reads the labels: an upper bound)."""

    name, per_layer = "oracle", False

    def stop(self, test, variant):
        return test[variant.target].to_numpy(bool)


def default_stoppers(seed: int = 0) -> list[Stopper]:
    return [
        FullModel(),
        Majority(),
        StaticLayer(),
        GapRule(0.8),
        FittedGapRule(),
        SVMStopper(seed=seed),
        CRFStopper(),
        Oracle(),
    ]


# ---- evaluation --------------------------------------------------------------------------------


def exit_rows(frame: pd.DataFrame, stop: np.ndarray) -> pd.DataFrame:
    """Per instance, the row of its exit layer: the first layer flagged ``stop``, else its last layer."""
    flagged = frame.assign(_stop=stop)
    last = flagged["layer"] == flagged.groupby(INSTANCE, sort=False)["layer"].transform("max")
    candidates = flagged[flagged["_stop"] | last]
    return candidates.groupby(INSTANCE, sort=False).head(1).drop(columns="_stop").reset_index(drop=True)


def evaluate(
    stopper: Stopper, test: pd.DataFrame, variant: Variant, shape: DecoderShape | Uncounted
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-instance exits of ``stopper`` on ``test`` (with FLOPs), and its per-row decisions."""
    test = _sorted(test)
    stop = stopper.stop(test, variant)
    rows = exit_rows(test, stop)
    exits = rows[[*INSTANCE, "layer", "n_tokens"]].rename(columns={"layer": "stop_layer"})
    exits["correct"] = rows[variant.target].to_numpy(bool)
    exits["flops"] = [
        shape.exit(int(s), int(layer), stopper.uses_lens) for s, layer in zip(rows["n_tokens"], rows["layer"])
    ]
    exits["flops_full"] = [shape.full(int(s)) for s in rows["n_tokens"]]
    return exits, stop


@dataclass(frozen=True)
class Split:
    """One train/test pairing of a generalisation setting."""

    setting: str
    train_on: str
    train: pd.DataFrame
    test: pd.DataFrame


def generalisation_splits(items: pd.DataFrame, model: str, is_test: pd.Series) -> Iterator[Split]:
    """AdaInfer Table 6's settings, test items always from ``model``'s test split:

    * intra-task: train on the task's train items (all languages);
    * inter-task: train on the other tasks' train items;
    * inter-lang: train on the task's train items in the other languages;
    * inter-model: train on another model's train items of the task.
    """
    train_all, test_all = items[~is_test], items[is_test]
    own_train, own_test = train_all[train_all["model"] == model], test_all[test_all["model"] == model]
    for task in sorted(own_test["task"].unique()):
        test = own_test[own_test["task"] == task]
        yield Split("intra-task", task, own_train[own_train["task"] == task], test)
        others = own_train[own_train["task"] != task]
        if not others.empty:
            yield Split("inter-task", "+".join(sorted(others["task"].unique())), others, test)
        for lang in sorted(test["lang"].unique()):
            other_langs = own_train[(own_train["task"] == task) & (own_train["lang"] != lang)]
            if not other_langs.empty:
                langs = "+".join(sorted(other_langs["lang"].unique()))
                yield Split("inter-lang", f"{task} in {langs}", other_langs, test[test["lang"] == lang])
        other_models = train_all[(train_all["model"] != model) & (train_all["task"] == task)]
        if not other_models.empty:
            yield Split("inter-model", "+".join(sorted(other_models["model"].unique())), other_models, test)


def run_strategies(
    items: pd.DataFrame,
    model: str,
    shape: DecoderShape | Uncounted,
    *,
    variants: Iterable[str] = tuple(VARIANTS),
    test_fraction: float = 0.5,
    seed: int = 0,
    stoppers: Callable[[int], list[Stopper]] = default_stoppers,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every stopper on every split's train part and evaluate it on the test part.

    Returns the per-instance exits (``setting, train_on, variant, strategy`` + instance, exit
    layer, correctness, FLOPs) and the per-row decisions of the per-layer classifiers
    (``setting, variant, strategy, y, stop``) for the classifier table.
    """
    items = with_depth(items)
    is_test = is_test_item(items, test_fraction, seed)
    exits, decisions = [], []
    for split in generalisation_splits(items, model, is_test):
        if split.train.empty or split.test.empty:
            continue
        for variant_name in variants:
            variant = VARIANTS[variant_name]
            for stopper in stoppers(seed):
                stopper.fit(_sorted(split.train), variant)
                exit_table, stop = evaluate(stopper, split.test, variant, shape)
                labels = {
                    "setting": split.setting,
                    "train_on": split.train_on,
                    "variant": variant_name,
                    "strategy": stopper.name,
                }
                exits.append(exit_table.assign(**labels))
                if stopper.per_layer:
                    y = _sorted(split.test)[variant.target].to_numpy(bool)
                    decisions.append(pd.DataFrame({**labels, "y": y, "stop": stop}))
    columns = ["setting", "train_on", "variant", "strategy"]
    exit_frame = pd.concat(exits, ignore_index=True) if exits else pd.DataFrame()
    if not exit_frame.empty:
        exit_frame = exit_frame[columns + [c for c in exit_frame.columns if c not in columns]]
    return exit_frame, pd.concat(decisions, ignore_index=True) if decisions else pd.DataFrame()


def summarise_exits(exits: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Accuracy (95% Wilson interval), FLOPs ratio (% of the plain forward pass, total over
    items) and mean and variance of the number of layers run, per group (AdaInfer Tables 2, 3, 6)."""
    grouped = exits.assign(layers=exits["stop_layer"] + 1).groupby(by, sort=False)
    out = grouped.agg(
        n=("correct", "size"),
        k=("correct", "sum"),
        flops=("flops", "sum"),
        flops_full=("flops_full", "sum"),
        layers_mean=("layers", "mean"),
        layers_var=("layers", lambda x: float(np.var(x))),
    ).reset_index()
    out["accuracy"] = out["k"] / out["n"]
    out["accuracy_low"], out["accuracy_high"] = wilson_interval(out["k"], out["n"])
    out["flops_ratio"] = 100 * out["flops"] / out["flops_full"]
    return out.drop(columns=["k", "flops", "flops_full"])


def strategy_table(exits: pd.DataFrame) -> pd.DataFrame:
    """AdaInfer Tables 2 and 3: per setting, variant, strategy, task and language."""
    return summarise_exits(exits, ["setting", "variant", "strategy", "model", "task", "lang"])


def generalisation_table(exits: pd.DataFrame) -> pd.DataFrame:
    """AdaInfer Table 6: per setting, variant and strategy, pooled over tasks and languages."""
    return summarise_exits(exits, ["setting", "variant", "strategy", "model"])


def classifier_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Held-out per-(item, layer) classification of each stopper against the majority class.

    ``majority_accuracy`` is the accuracy of the majority stopper (fitted on each split's train
    part) on the same rows; ``beats_majority`` compares accuracies. ``balanced_accuracy`` is the
    mean of the per-class recalls: 0.5 for a constant classifier within one split (pooled over
    splits whose majority labels differ, the majority stopper can score above 0.5).
    """

    def scores(frame: pd.DataFrame) -> pd.Series:
        y, stop = frame["y"].to_numpy(bool), frame["stop"].to_numpy(bool)
        recalls = [np.mean(stop[y == c] == c) for c in (True, False) if (y == c).any()]
        return pd.Series(
            {
                "n": len(y),
                "stop_rate": y.mean(),
                "accuracy": np.mean(y == stop),
                "balanced_accuracy": float(np.mean(recalls)),
            }
        )

    keys = ["setting", "variant", "strategy"]
    out = decisions.groupby(keys, sort=False)[["y", "stop"]].apply(scores).reset_index()
    majority = out[out["strategy"] == Majority.name].set_index(["setting", "variant"])["accuracy"]
    out["majority_accuracy"] = [majority.get((s, v), np.nan) for s, v in zip(out["setting"], out["variant"])]
    out["beats_majority"] = out["accuracy"] > out["majority_accuracy"]
    return out


def static_exit_curve(items: pd.DataFrame, shape: DecoderShape | Uncounted, variant: str = "full") -> pd.DataFrame:
    """Exit every item at layer ``l`` (no lens at the other layers): accuracy and FLOPs ratio per
    ``(model, task, layer)``, pooled over languages: the non-adaptive trade-off."""
    target = VARIANTS[variant].target
    frame = items.assign(
        flops=[
            shape.exit(int(s), int(layer), lens_every_layer=False)
            for s, layer in zip(items["n_tokens"], items["layer"])
        ],
        flops_full=[shape.full(int(s)) for s in items["n_tokens"]],
    )
    out = (
        frame.groupby(["model", "task", "layer"])
        .agg(n=(target, "size"), k=(target, "sum"), flops=("flops", "sum"), flops_full=("flops_full", "sum"))
        .reset_index()
    )
    out["accuracy"] = out["k"] / out["n"]
    out["accuracy_low"], out["accuracy_high"] = wilson_interval(out["k"], out["n"])
    out["flops_ratio"] = 100 * out["flops"] / out["flops_full"]
    return out.drop(columns=["k", "flops", "flops_full"]).assign(variant=variant)
