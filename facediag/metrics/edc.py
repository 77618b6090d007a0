"""Accuracy by face size and quality: size bins and the error-versus-discard characteristic (EDC).

The EDC (ISO/IEC 29794-1; Schlett et al., "Considerations on the evaluation of biometric quality
assessment algorithms", IEEE T-BIOM 2024) asks whether a quality measure predicts recognition
errors: discard the lowest-quality probes first and plot the error of the probes that remain
against the fraction discarded. A useful quality measure makes the curve fall fast; its partial
area under the curve (pAUC) up to a discard fraction limit is the one number that ranks measures
(lower is better).

Choices, as the literature makes them and as every section states:

* Probes of equal quality are discarded together (one step of the curve per distinct quality
  value), so the curve does not depend on the order of tied probes.
* The curve is a step function (stepwise interpolation): the error at a discard fraction is the
  error after the last step at or below it; the pAUC integrates that step function.
* A final point (discarded 1, error 0) closes the curve for plotting, as the reference
  implementation does; it enters the pAUC only for a limit beyond the last tie group.
* Every quality here is "higher is better": face size in px, blur as the variance of the
  Laplacian (sharper images score higher) and the raw embedding norm (the premise of
  AdaFace/MagFace: the norm grows with recognisability).
"""
from __future__ import annotations

import math

import numpy as np

SIZE_EDGES = (16, 24, 32, 48)
PAUC_LIMIT = 0.2            # discard fraction limit of the pAUC: the 20 % most often reported
MIN_BIN_PROBES = 10         # below this a single probe moves a bin's rank-1 by more than 10 points
MAX_CURVE_POINTS = 501      # stored/plotted points per curve; the pAUC always uses the full curve
QUALITIES = {
    "size": "native crop size in px (the shorter side of the original file); larger is better",
    "blur": ("variance of the Laplacian of the grey original (4-neighbour kernel); sharper is better. Measured "
             "per pixel at the file's own size, it also grows as the same face is stored smaller: read it "
             "beside size"),
    "norm": "raw (unnormalised) embedding norm; larger is better",
}


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the Laplacian of a grey image: the usual no-reference sharpness (blur) measure.

    The Laplacian is scipy.ndimage.laplace: the 4-neighbour 3×3 kernel ``[[0, 1, 0], [1, -4, 1],
    [0, 1, 0]]``, borders mirrored without repeating the edge pixel (``mode="mirror"``, OpenCV's
    BORDER_REFLECT_101 default, so the value matches ``cv2.Laplacian(gray, cv2.CV_64F).var()``).

    Parameters
    ----------
    gray : numpy.ndarray
        2-D grey image. The value scales with the square of the intensity scale: facediag passes
        the 8-bit grey of the original file (0–255), as the literature does.

    Returns
    -------
    float
        The variance (population, ddof=0) of the Laplacian over all pixels; 0 for a flat image.

    Raises
    ------
    ValueError
        ``gray`` is not 2-D, is smaller than 2×2 or holds non-finite values.
    """
    from scipy import ndimage  # scipy is a core dependency; imported here to keep metrics' import light

    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2 or min(g.shape) < 2:
        raise ValueError(f"laplacian_variance needs a 2-D grey image of at least 2×2 px, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("laplacian_variance: the image holds non-finite values")
    return float(ndimage.laplace(g, mode="mirror").var())


def edc_curve(quality, errors, *, limit: float = PAUC_LIMIT) -> dict:
    """Error-versus-discard characteristic of per-probe errors ordered by quality.

    Parameters
    ----------
    quality : array_like
        Per-probe quality, higher is better; finite.
    errors : array_like of bool
        Per-probe error (True = an error: rank-1 miss, or genuine score below the threshold).
    limit : float
        Discard fraction up to which the partial area is integrated, in (0, 1].

    Returns
    -------
    dict
        JSON-ready: ``n``, ``errors`` (count at 0 % discarded), ``discard`` and ``error`` (the
        full step curve: discard fractions at the start of each tie group, then 1.0; the error
        fraction of the probes that remain, 0 at the closing point), ``pauc`` (area under the
        step curve from 0 to ``limit``) and ``pauc_limit``.

    Raises
    ------
    ValueError
        Empty input, lengths that differ, non-finite quality, or a limit outside (0, 1].
    """
    q = np.asarray(quality, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=bool).ravel()
    if q.size == 0:
        raise ValueError("edc_curve: no probes")
    if q.size != e.size:
        raise ValueError(f"edc_curve: {q.size} quality values for {e.size} errors")
    if not np.isfinite(q).all():
        raise ValueError("edc_curve: quality values must be finite")
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"edc_curve: pAUC limit {limit} outside (0, 1]")
    order = np.argsort(q, kind="stable")   # lowest quality first
    q, e = q[order], e[order]
    n = q.size
    # errors among the probes from index k to the end = the ones still kept after discarding k
    remaining_errors = np.cumsum(e[::-1])[::-1]
    starts = np.concatenate(([0], np.flatnonzero(q[1:] != q[:-1]) + 1))  # tie groups go together
    discard = np.append(starts / n, 1.0)
    error = np.append(remaining_errors[starts] / (n - starts), 0.0)
    return {"n": int(n), "errors": int(e.sum()), "discard": discard.tolist(), "error": error.tolist(),
            "pauc": partial_area(discard, error, limit), "pauc_limit": float(limit)}


def partial_area(discard, error, limit: float = PAUC_LIMIT) -> float:
    """Area under a step EDC from discard 0 to ``limit`` (stepwise interpolation).

    Parameters
    ----------
    discard : array_like
        Increasing discard fractions, the first 0.
    error : array_like
        Error fraction holding from each discard fraction up to the next.
    limit : float
        Upper end of the integral, in (0, 1].

    Returns
    -------
    float
        The partial area; its maximum is ``limit`` (error 1 throughout).
    """
    d = np.asarray(discard, dtype=np.float64)
    err = np.asarray(error, dtype=np.float64)
    # each step spans [d_i, d_{i+1}) clipped to [0, limit]; the last step runs to the limit
    right = np.minimum(np.append(d[1:], max(limit, d[-1])), limit)
    widths = np.clip(right - d, 0.0, None)
    return float(np.dot(widths, err))


def thin_curve(curve: dict, max_points: int = MAX_CURVE_POINTS) -> dict:
    """The curve with at most ``max_points`` points for storage and plotting.

    Keeps, for each of ``max_points - 1`` evenly spaced discard fractions, the step in force there
    (the last point at or below it) plus the closing point, so the thinned step function equals
    the full one on that grid. The pAUC and counts are left as computed on the full curve.
    """
    d = np.asarray(curve["discard"])
    if d.size <= max_points:
        return curve
    grid = np.linspace(0.0, 1.0, max_points - 1, endpoint=False)
    keep = np.unique(np.append(np.searchsorted(d, grid, side="right") - 1, d.size - 1))
    err = np.asarray(curve["error"])
    return {**curve, "discard": d[keep].tolist(), "error": err[keep].tolist(), "thinned_from": int(d.size)}


def size_bins(sizes, correct, genuine=None, *, edges=SIZE_EDGES) -> list[dict]:
    """Rank-1 and mean genuine score per bin of native face size.

    Parameters
    ----------
    sizes : array_like
        Per-probe native crop size in px.
    correct : array_like of bool
        Per-probe rank-1 correctness.
    genuine : array_like or None
        Per-probe score against the probe's own mate, NaN where it has none.
    edges : sequence of float
        Increasing bin edges; bins are ``[-inf, e0), [e0, e1), …, [e_last, inf)``.

    Returns
    -------
    list of dict
        One per bin: ``label``, ``lo``/``hi`` (None for an open end), ``n``, ``rank1`` (None when
        empty), ``genuine_mean`` and ``n_genuine`` (probes with a mate), ``few`` (n below
        MIN_BIN_PROBES: read with care) and, when few, a ``note`` saying so.
    """
    s = np.asarray(sizes, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=bool).ravel()
    g = np.full(s.size, np.nan) if genuine is None else np.asarray(genuine, dtype=np.float64).ravel()
    if not (s.size == c.size == g.size):
        raise ValueError(f"size_bins: {s.size} sizes, {c.size} correct, {g.size} genuine scores")
    if not np.isfinite(s).all():
        raise ValueError("size_bins: sizes must be finite")
    e = [float(x) for x in edges]
    if not e or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"size_bins: edges {tuple(edges)} must be non-empty and increasing")
    which = np.searchsorted(e, s, side="right")   # bin i holds e[i-1] <= size < e[i]
    bins = []
    for i in range(len(e) + 1):
        lo = e[i - 1] if i > 0 else None
        hi = e[i] if i < len(e) else None
        mask = which == i
        n = int(mask.sum())
        gm = g[mask]
        gm = gm[np.isfinite(gm)]
        row = {"label": _label(lo, hi), "lo": lo, "hi": hi, "n": n,
               "rank1": float(c[mask].mean()) if n else None,
               "genuine_mean": float(gm.mean()) if gm.size else None, "n_genuine": int(gm.size),
               "few": n < MIN_BIN_PROBES}
        if row["few"]:
            row["note"] = "no probes" if n == 0 else f"only {n} probe{'s' if n != 1 else ''}: too few to read"
        bins.append(row)
    return bins


def _label(lo: float | None, hi: float | None) -> str:
    def px(v: float) -> str:
        return f"{v:g}"
    if lo is None:
        return f"< {px(hi)} px"
    if hi is None:
        return f"≥ {px(lo)} px"
    return f"{px(lo)}–{px(hi)} px"


def quality_section(*, sizes=None, blur=None, norms=None, correct, genuine=None, threshold=None,
                    edges=SIZE_EDGES, limit: float = PAUC_LIMIT) -> dict:
    """Accuracy by face size and the EDC for each quality given: a bench row's ``by_quality``.

    Parameters
    ----------
    sizes, blur, norms : array_like or None
        Per-probe qualities (length n_probes): native crop size in px (shorter side of the
        original file), variance of the Laplacian of the grey original (`laplacian_variance`)
        and the raw embedding norm. Each one given gets an EDC; ``sizes`` also gets the bins.
    correct : array_like of bool
        Per-probe rank-1 correctness, over the probes that count toward rank-1 (closed set:
        identity in the gallery).
    genuine : array_like or None
        Per-probe score against the probe's own mate (NaN where none): the bins' mean genuine
        score and, with ``threshold``, the FNMR curve over the probes that have a mate.
    threshold : float or None
        Comparison threshold for the FNMR curve (a genuine score below it is a false non-match).
    edges : sequence of float
        Size-bin edges in px.
    limit : float
        Discard fraction limit of each curve's partial area.

    Returns
    -------
    dict
        JSON-ready ``{"n": …, "size_bins": [...] or None, "edc": {quality: {"description",
        "rank1_error": curve, "fnmr": curve or None}}, "threshold", "pauc_limit", "method"}``;
        curves as `edc_curve` returns them, thinned for storage by `thin_curve`.

    Raises
    ------
    ValueError
        No probes, no quality given, arrays of different lengths, non-finite quality values, or
        ``threshold`` given without ``genuine``.
    """
    c = np.asarray(correct, dtype=bool).ravel()
    n = c.size
    if n == 0:
        raise ValueError("quality_section: no probes")
    given = {name: q for name, q in (("size", sizes), ("blur", blur), ("norm", norms)) if q is not None}
    if not given:
        raise ValueError("quality_section: give at least one of sizes, blur, norms")
    arrays = {name: np.asarray(q, dtype=np.float64).ravel() for name, q in given.items()}
    g = None if genuine is None else np.asarray(genuine, dtype=np.float64).ravel()
    for name, arr in [*arrays.items(), *([("genuine", g)] if g is not None else [])]:
        if arr.size != n:
            raise ValueError(f"quality_section: {arr.size} {name} values for {n} probes")
    if threshold is not None and (g is None or not math.isfinite(threshold)):
        raise ValueError("quality_section: a finite threshold needs the genuine scores")
    edc = {}
    for name, q in arrays.items():
        entry = {"description": QUALITIES[name], "rank1_error": thin_curve(edc_curve(q, ~c, limit=limit)),
                 "fnmr": None}
        if threshold is not None:
            mated = np.isfinite(g)
            if mated.any():
                entry["fnmr"] = thin_curve(edc_curve(q[mated], g[mated] < threshold, limit=limit))
        edc[name] = entry
    return {"n": int(n),
            "size_bins": size_bins(arrays["size"], c, g, edges=edges) if "size" in arrays else None,
            "edges": [float(x) for x in edges], "min_bin_probes": MIN_BIN_PROBES,
            "edc": edc, "threshold": None if threshold is None else float(threshold),
            "pauc_limit": float(limit), "method": method(limit)}


def method(limit: float = PAUC_LIMIT) -> str:
    """One sentence describing how the section was computed, for a report's notes."""
    return (f"EDC (ISO/IEC 29794-1): probes discarded lowest quality first, equal qualities together; "
            f"error = rank-1 error (and FNMR at the stated threshold over probes with a mate) of the "
            f"probes kept; stepwise curve, partial area up to {limit:g} discarded")
