"""A model's plots as SVG: ``coefficients``, ``path``, ``cv`` and ``residuals``.

Rendered with matplotlib's object API on the Agg/SVG backend (no pyplot global state, so
renders may run in the threadpool side by side) from what the fit stored with the model:
the summary's coefficients, tuning and path, and its ``plots`` part (the unregularized
least-squares coefficients and the test split's predictions). A model never changes, so
each (model id, kind) is rendered once and kept in a small LRU cache.

Every series carries a ``gid`` (an ``id`` on its SVG group) so that tests and scripts can
count them: ``coef-<name>``, ``unregularized-<name>``, ``path-<name>``, ``cv-<penalty>``,
``chosen-alpha``, ``best-alpha``, ``one-se-alpha``, ``residuals``.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any, Final

import numpy as np
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

KINDS: Final = ("coefficients", "path", "cv", "residuals")
_CACHE_SIZE: Final = 256
_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_cache_lock = threading.Lock()

# Text stays text (no glyph outlines, no font files to fetch); the hash salt makes the
# element ids, hence the bytes, the same from one render to the next.
_RC: Final[dict[str, Any]] = {"svg.fonttype": "none", "svg.hashsalt": "regfit"}


class PlotUnavailable(ValueError):
    """The model lacks what this plot needs (e.g. ``cv`` of an untuned model)."""


def render(model_id: str, kind: str, summary: dict[str, Any]) -> bytes:
    """The SVG of plot ``kind`` of the model, from the cache or rendered now."""
    key = (model_id, kind)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    svg = _RENDERERS[kind](summary)
    with _cache_lock:
        _cache[key] = svg
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return svg


def _svg(fig: Figure) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        FigureCanvasSVG(fig).print_svg(buffer)
    return buffer.getvalue()


def _figure(height: float = 4.5) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.5, height), layout="constrained")
    return fig, fig.add_subplot()


def _coefficients(summary: dict[str, Any]) -> bytes:
    fitted: dict[str, float | None] = summary["coefficients"]["scaled"]
    unregularized = (summary.get("plots") or {}).get("unregularized")
    names = sorted(fitted, key=lambda n: abs(fitted[n] or 0.0))  # largest on top
    y = np.arange(len(names))
    fig, ax = _figure(max(3.0, 0.28 * len(names) + 1.5))
    height = 0.4 if unregularized else 0.8
    for i, name in enumerate(names):
        value = fitted[name] or 0.0
        bar = ax.barh(i + (height / 2 if unregularized else 0), value, height, color="C0")
        bar.patches[0].set_gid(f"coef-{name}")
        if value == 0.0:  # an L1 zero: a marker, since a bar of width 0 does not show
            ax.plot([0], [i + (height / 2 if unregularized else 0)], "o", color="C0", ms=3)
        if unregularized:
            ols = ax.barh(i - height / 2, unregularized.get(name) or 0.0, height, color="C7")
            ols.patches[0].set_gid(f"unregularized-{name}")
    ax.set_yticks(y, names)
    ax.axvline(0.0, color="black", lw=0.6)
    ax.set_xlabel("coefficient (scaled units)")
    handles = [ax.containers[0]]
    labels = [
        f"{summary['penalty'].get('type', '')} alpha={summary['penalty'].get('alpha', 0):.4g}"
    ]
    if unregularized:
        handles.append(ax.containers[1])
        labels.append("least squares (unregularized)")
    ax.legend(handles, labels, loc="lower right")
    ax.set_title("Coefficients, sorted by magnitude")
    return _svg(fig)


def _path(summary: dict[str, Any]) -> bytes:
    path = summary.get("path")
    if not path:
        raise PlotUnavailable("the model has no recorded regularization path")
    alphas = np.asarray(path["alphas"], dtype=np.float64)
    fig, ax = _figure()
    for name, values in path["coefficients"].items():
        line = ax.plot(alphas, [np.nan if v is None else v for v in values], lw=1.2)[0]
        line.set_gid(f"path-{name}")
    marker = ax.axvline(path["alpha"], color="black", ls="--", lw=1)
    marker.set_gid("chosen-alpha")
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel("coefficient (scaled units)")
    ax.set_title(f"Regularization path ({path['penalty']}); chosen alpha = {path['alpha']:.4g}")
    return _svg(fig)


def _cv(summary: dict[str, Any]) -> bytes:
    tuning = summary.get("tuning")
    if not tuning:
        raise PlotUnavailable("the model was not tuned: it has no cross-validation curve")
    default_kind = summary["penalty"].get("type", "")
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for c in tuning["candidates"]:
        params = c["params"]
        if params.get("alpha") is None or c["mean_score"] is None:
            continue
        label = params.get("penalty") or default_kind
        if params.get("l1_ratio") is not None and tuning["strategy"] == "grid":
            label = f"{label} l1_ratio={params['l1_ratio']:.3g}"
        curves.setdefault(label, []).append(
            (params["alpha"], c["mean_score"], c["std_score"] or 0.0)
        )
    fig, ax = _figure()
    for label, points in curves.items():
        a, mean, std = (np.asarray(v) for v in zip(*sorted(points), strict=True))
        if tuning["strategy"] == "grid":
            (line,) = ax.plot(a, mean, marker=".", label=label)
            ax.fill_between(a, mean - std, mean + std, alpha=0.15, color=line.get_color())
            line.set_gid(f"cv-{label}")
        else:  # random/Bayesian: the evaluated candidates as points
            bars = ax.errorbar(a, mean, yerr=std, fmt="o", ms=4, capsize=2, label=label)
            bars.lines[0].set_gid(f"cv-{label}")
    best = tuning["candidates"][tuning["best_index"]]["params"]["alpha"]
    ax.axvline(best, color="C3", ls=":", lw=1, label=f"best alpha {best:.4g}").set_gid("best-alpha")
    if tuning.get("select") == "1se":
        chosen = summary["penalty"].get("alpha")
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"1-SE alpha {chosen:.4g}").set_gid(
            "one-se-alpha"
        )
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel(f"CV {tuning['scoring']} (mean ± 1 sd)")
    ax.legend()
    ax.set_title("Cross-validation")
    return _svg(fig)


def _residuals(summary: dict[str, Any]) -> bytes:
    test = (summary.get("plots") or {}).get("test")
    if not test:
        raise PlotUnavailable("the model has no test split to plot (split.test_size was 0)")
    actual = np.asarray([np.nan if v is None else v for v in test["actual"]], dtype=np.float64)
    predicted = np.asarray(
        [np.nan if v is None else v for v in test["predicted"]], dtype=np.float64
    )
    fig, ax = _figure(5.5)
    ax.scatter(actual, predicted, s=8, alpha=0.6).set_gid("residuals")
    low = float(np.nanmin([actual.min(), predicted.min()]))
    high = float(np.nanmax([actual.max(), predicted.max()]))
    ax.plot([low, high], [low, high], color="black", lw=0.8, ls="--")
    ax.set_xlabel(f"actual {summary.get('target', '')}")
    ax.set_ylabel("predicted")
    ax.set_title(f"Test split: predicted vs actual ({len(actual)} rows)")
    return _svg(fig)


_RENDERERS = {
    "coefficients": _coefficients,
    "path": _path,
    "cv": _cv,
    "residuals": _residuals,
}
