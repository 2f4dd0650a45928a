"""A model's plots as SVG: ``coefficients``, ``path``, ``cv``, ``residuals``, ``comparison``.

Rendered with matplotlib's object API on the Agg/SVG backend (no pyplot global state, so
renders may run in the threadpool side by side) from what the fit stored with the model:
the summary's coefficients, tuning and path, and its ``plots`` part (the unregularized
least-squares coefficients and the test split's predictions). A model never changes, so
each (model id, kind) is rendered once and kept in a small LRU cache.

Every series carries a ``gid`` (an ``id`` on its SVG group) so that tests and scripts can
count them: ``coef-<name>``, ``unregularized-<name>``, ``path-<name>``, ``cv-<penalty>``
(a grid without compared penalties: ``cv-<penalty>-l1_ratio-<r>`` per searched ratio),
``chosen-alpha``, ``best-alpha``, ``one-se-alpha``, ``residuals``. A comparison of
penalties draws one panel per compared penalty in ``path`` (``penalty-<kind>``, its lines
``path-<kind>-<name>``, the model's alpha ``chosen-alpha`` in its own penalty's panel,
``best-alpha-<kind>`` in the others), one curve per compared penalty in ``cv``, and
``compare-<kind>-<name>`` bars in ``comparison``.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any, Final

import numpy as np
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

KINDS: Final = ("coefficients", "path", "cv", "residuals", "comparison")
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
    compared = path.get("compared")
    if not compared:
        fig, ax = _figure()
        _path_lines(ax, path, "path-", "chosen-alpha")
        ax.set_title(f"Regularization path ({path['penalty']}); chosen alpha = {path['alpha']:.4g}")
        return _svg(fig)
    # A comparison: one panel per compared penalty, the model's marked at its alpha.
    fig = Figure(figsize=(7.5, 3.2 * len(compared)), layout="constrained")
    axes = fig.subplots(len(compared), 1, squeeze=False)[:, 0]
    for ax, (kind, curve) in zip(axes, compared.items(), strict=True):
        own = kind == path["penalty"]
        ax.set_gid(f"penalty-{kind}")
        _path_lines(ax, curve, f"path-{kind}-", "chosen-alpha" if own else f"best-alpha-{kind}")
        ratio = "" if curve["l1_ratio"] is None else f", l1_ratio = {curve['l1_ratio']:.3g}"
        what = "chosen" if own else "its best"
        ax.set_title(f"{kind}{ratio}: {what} alpha = {curve['alpha']:.4g}", fontsize=10)
    fig.suptitle("Regularization paths of the compared penalties")
    return _svg(fig)


def _path_lines(ax: Any, path: dict[str, Any], prefix: str, marker_gid: str) -> None:
    """Every coefficient of ``path`` along its alphas, its ``alpha`` marked."""
    alphas = np.asarray(path["alphas"], dtype=np.float64)
    for name, values in path["coefficients"].items():
        line = ax.plot(alphas, [np.nan if v is None else v for v in values], lw=1.2)[0]
        line.set_gid(f"{prefix}{name}")
    ax.axvline(path["alpha"], color="black", ls="--", lw=1).set_gid(marker_gid)
    positive = alphas[alphas > 0]
    if positive.size == alphas.size:
        ax.set_xscale("log")
    else:  # an alpha of 0 (no penalty) has no place on a log axis
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    ax.set_xlabel("alpha")
    ax.set_ylabel("coefficient (scaled units)")


def _cv(summary: dict[str, Any]) -> bytes:
    tuning = summary.get("tuning")
    if not tuning:
        raise PlotUnavailable("the model was not tuned: it has no cross-validation curve")
    fig, ax = _figure()
    if tuning["strategy"] == "grid":
        _cv_curves(ax, summary)
    else:  # random/Bayesian: the evaluated candidates as points
        _cv_points(fig, ax, summary)
    best = tuning["candidates"][tuning["best_index"]]["params"].get("alpha")
    if best is not None:
        ax.axvline(best, color="C3", ls=":", lw=1, label=f"best alpha {best:.4g}").set_gid(
            "best-alpha"
        )
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


def _cv_curves(ax: Any, summary: dict[str, Any]) -> None:
    """A grid's CV curves: one per compared penalty (at its best ``l1_ratio``), else one
    per searched ``l1_ratio``."""
    compared = (summary.get("path") or {}).get("compared")
    curves: dict[str, tuple[str, list[tuple[float, float, float]]]] = {}
    if compared:
        for kind, curve in compared.items():
            ratio = "" if curve["l1_ratio"] is None else f" (l1_ratio={curve['l1_ratio']:.3g})"
            points = [
                (a, m, s or 0.0)
                for a, m, s in zip(
                    curve["alphas"], curve["cv"]["mean"], curve["cv"]["std"], strict=True
                )
                if m is not None
            ]
            curves[kind] = (f"{kind}{ratio}", points)
    else:
        kind = summary["penalty"].get("type", "")
        for c in summary["tuning"]["candidates"]:
            params = c["params"]
            if params.get("alpha") is None or c["mean_score"] is None:
                continue
            key, label = kind, kind
            if params.get("l1_ratio") is not None:
                key = f"{kind}-l1_ratio-{params['l1_ratio']:.3g}"
                label = f"{kind} l1_ratio={params['l1_ratio']:.3g}"
            entry = curves.setdefault(key, (label, []))
            entry[1].append((params["alpha"], c["mean_score"], c["std_score"] or 0.0))
    for key, (label, points) in curves.items():
        if not points:
            continue
        a, mean, std = (np.asarray(v) for v in zip(*sorted(points), strict=True))
        (line,) = ax.plot(a, mean, marker=".", label=label)
        ax.fill_between(a, mean - std, mean + std, alpha=0.15, color=line.get_color())
        line.set_gid(f"cv-{key}")


def _cv_points(fig: Figure, ax: Any, summary: dict[str, Any]) -> None:
    """A random or Bayesian search's candidates as points (± 1 sd), one series per
    penalty, coloured by ``l1_ratio`` where it was searched."""
    default_kind = summary["penalty"].get("type", "")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for c in summary["tuning"]["candidates"]:
        if c["params"].get("alpha") is None or c["mean_score"] is None:
            continue
        by_kind.setdefault(c["params"].get("penalty") or default_kind, []).append(c)
    ratios = [
        c["params"]["l1_ratio"]
        for group in by_kind.values()
        for c in group
        if c["params"].get("l1_ratio") is not None
    ]
    markers = "osD^v"
    scatter = None
    for n, (kind, group) in enumerate(by_kind.items()):
        a = np.asarray([c["params"]["alpha"] for c in group])
        mean = np.asarray([c["mean_score"] for c in group])
        std = np.asarray([c["std_score"] or 0.0 for c in group])
        ax.errorbar(a, mean, yerr=std, fmt="none", ecolor="0.7", lw=0.8, capsize=2)
        ratio = [c["params"].get("l1_ratio") for c in group]
        if ratios and all(r is not None for r in ratio):
            points = ax.scatter(
                a,
                mean,
                c=ratio,
                cmap="viridis",
                vmin=min(ratios),
                vmax=max(ratios),
                marker=markers[n % len(markers)],
                s=22,
                label=kind,
            )
            scatter = points
        else:
            points = ax.scatter(a, mean, marker=markers[n % len(markers)], s=22, label=kind)
        points.set_gid(f"cv-{kind}")
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="l1_ratio")


def _comparison(summary: dict[str, Any]) -> bytes:
    """Each compared penalty's coefficients at its best alpha, side by side per feature."""
    compared = (summary.get("path") or {}).get("compared")
    if not compared:
        raise PlotUnavailable("the model's search did not compare penalties (space.penalty)")
    names = list(summary["coefficients"]["scaled"])
    own = summary["path"]["penalty"]
    order = sorted(names, key=lambda n: abs(summary["coefficients"]["scaled"][n] or 0.0))
    fig, ax = _figure(max(3.0, 0.35 * len(names) * len(compared) / 2 + 1.5))
    height = 0.8 / len(compared)
    for k, (kind, curve) in enumerate(compared.items()):
        at = int(np.argmin(np.abs(np.asarray(curve["alphas"]) - curve["alpha"])))
        values = [curve["coefficients"][name][at] or 0.0 for name in order]
        offset = (k - (len(compared) - 1) / 2) * height
        ratio = "" if curve["l1_ratio"] is None else f", l1_ratio={curve['l1_ratio']:.3g}"
        label = f"{kind} alpha={curve['alpha']:.4g}{ratio}" + (" (model)" if kind == own else "")
        bars = ax.barh(np.arange(len(order)) + offset, values, height, label=label)
        for name, patch in zip(order, bars.patches, strict=True):
            patch.set_gid(f"compare-{kind}-{name}")
    ax.set_yticks(np.arange(len(order)), order)
    ax.axvline(0.0, color="black", lw=0.6)
    ax.set_xlabel("coefficient (scaled units), each penalty at its best alpha")
    ax.legend(loc="lower right")
    ax.set_title("Compared penalties: coefficients at each one's best alpha")
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
    "comparison": _comparison,
}
