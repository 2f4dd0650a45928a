"""A classifier's plots as SVG: ``coefficients``, ``path`` and ``cv`` (as :mod:`.plots`).

- ``coefficients``: one panel per logit row (the positive class for a binary target, else
  each class), bars sorted by magnitude; ``gid`` ``coef-<row>-<name>``.
- ``path``: one panel per row, one line per model column along ``C`` (log scale), the fitted
  ``C`` marked; ``gid`` ``path-<row>-<name>``, ``chosen-C``.
- ``cv``: the mean CV score (± 1 sd) along ``C``, one curve per compared penalty and
  ``l1_ratio``; the best and the selected (1se) ``C`` marked; ``gid`` ``cv-<label>``,
  ``best-C``, ``one-se-C``.

A classifier has no residuals: its confusion matrices are in the model's ``metrics``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

import numpy as np
from matplotlib.figure import Figure

from service.models.plots import PlotUnavailable, _svg

_CACHE_SIZE: Final = 64
_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def render(model_id: str, kind: str, summary: dict[str, Any]) -> bytes:
    """The SVG of plot ``kind`` of the classifier, from the cache or rendered now."""
    key = (model_id, kind)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        raise PlotUnavailable(
            f"a classifier has no {kind} plot (its confusion matrices are in metrics)"
        )
    svg = renderer(summary)
    with _cache_lock:
        _cache[key] = svg
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return svg


def _panels(n: int, height: float) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(7.5, height * n), layout="constrained")
    return fig, [fig.add_subplot(n, 1, i + 1) for i in range(n)]


def _coefficients(summary: dict[str, Any]) -> bytes:
    table = summary["coefficients"]
    names: list[str] = table["columns"]
    fig, axes = _panels(len(table["rows"]), max(2.5, 0.25 * len(names) + 1.2))
    for ax, row, values in zip(axes, table["rows"], table["scaled"], strict=True):
        order = sorted(range(len(names)), key=lambda j: abs(values[j] or 0.0))
        for i, j in enumerate(order):
            bar = ax.barh(i, values[j] or 0.0, 0.8, color="C0")
            bar.patches[0].set_gid(f"coef-{row}-{names[j]}")
        ax.set_yticks(np.arange(len(order)), [names[j] for j in order])
        ax.axvline(0.0, color="black", lw=0.6)
        ax.set_title(f"logit of class {row!r}")
    axes[-1].set_xlabel(f"coefficient (scaled units), C={summary['penalty']['C']:.4g}")
    return _svg(fig)


def _path(summary: dict[str, Any]) -> bytes:
    path = summary.get("path")
    if not path:
        raise PlotUnavailable("the model has no recorded regularization path")
    Cs = np.asarray(path["Cs"], dtype=np.float64)
    fig, axes = _panels(len(path["rows"]), 3.2)
    for ax, row in zip(axes, path["rows"], strict=True):
        for name, values in path["coefficients"][str(row)].items():
            line = ax.plot(Cs, [np.nan if v is None else v for v in values], lw=1.2)[0]
            line.set_gid(f"path-{row}-{name}")
        ax.axvline(path["C"], color="black", ls="--", lw=1).set_gid("chosen-C")
        ax.set_xscale("log")
        ax.set_ylabel("coefficient")
        ax.set_title(f"class {row!r}: {path['penalty']} path; chosen C = {path['C']:.4g}")
    axes[-1].set_xlabel("C (smaller: more regularized)")
    return _svg(fig)


def _cv(summary: dict[str, Any]) -> bytes:
    tuning = summary.get("tuning")
    if not tuning:
        raise PlotUnavailable("the model was not tuned: it has no cross-validation curve")
    default_kind = summary["penalty"]["type"]
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for c in tuning["candidates"]:
        params = c["params"]
        if params.get("C") is None or c["mean_score"] is None:
            continue
        label = params.get("penalty") or default_kind
        if params.get("l1_ratio") is not None:
            label = f"{label} l1_ratio={params['l1_ratio']:.3g}"
        curves.setdefault(label, []).append((params["C"], c["mean_score"], c["std_score"] or 0.0))
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label, points in curves.items():
        C, mean, std = (np.asarray(v) for v in zip(*sorted(points), strict=True))
        (line,) = ax.plot(C, mean, marker=".", label=label)
        ax.fill_between(C, mean - std, mean + std, alpha=0.15, color=line.get_color())
        line.set_gid(f"cv-{label}")
    best = tuning["best_params"].get("C")
    if best is not None:
        ax.axvline(best, color="C3", ls=":", lw=1, label=f"best C {best:.4g}").set_gid("best-C")
    if tuning.get("select") == "1se":
        chosen = summary["penalty"]["C"]
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"1-SE C {chosen:.4g}").set_gid(
            "one-se-C"
        )
    ax.set_xscale("log")
    ax.set_xlabel("C")
    ax.set_ylabel(f"CV {tuning['scoring']} (mean ± 1 sd)")
    ax.legend()
    ax.set_title("Cross-validation (stratified folds)")
    return _svg(fig)


_RENDERERS = {"coefficients": _coefficients, "path": _path, "cv": _cv}
