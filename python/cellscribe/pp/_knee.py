"""Knee points of the barcode-rank curve, found with kneed (the two automatic QC strategies).

The barcode-rank curve sorts cells (barcodes) by their total counts, largest first, and plots the
total against the rank on log-log axes. Barcodes below ``lower`` counts are left out, as
DropletUtils' ``barcodeRanks`` does (default 100): in an unfiltered matrix the long tail of
near-empty droplets would otherwise dominate the curve.

``knee``
    :class:`kneed.KneeLocator` (``curve="concave"``, ``direction="decreasing"``) on the curve
    itself, one point per barcode (the automatic knee point of the DeepSeq seed).
``smoothed_knee``
    The same locator on a smoothed curve: the log-log curve is resampled at ``n_points`` ranks
    evenly spaced in log-rank (so that the thousands of low-count barcodes weigh no more than the
    first few), and kneed replaces it by its least-squares polynomial of degree
    ``polynomial_degree`` (``interp_method="polynomial"``) before locating the knee. Integer
    ties and the staircase they make at low counts no longer move the knee.

Both return the total-counts value of the barcode at the knee: cells with at least that many
counts pass. The knee method was designed for unfiltered barcode matrices (cells versus empty
droplets); on a matrix that Cell Ranger already filtered it lands inside the cell population and
removes real cells, which the QC plot shows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: Barcodes with fewer total counts are left out of the curve (DropletUtils' default).
DEFAULT_LOWER = 100
#: Points of the resampled curve that the smoothed knee is located on.
DEFAULT_POINTS = 200
#: Degree of kneed's smoothing polynomial.
DEFAULT_DEGREE = 7
#: Fewer barcodes above ``lower`` than this and no knee is looked for.
MIN_BARCODES = 10


@dataclass(frozen=True)
class Knee:
    """A knee point.

    Attributes
    ----------
    min_counts
        Total counts of the barcode at the knee (the threshold: cells with ``>=`` pass).
    rank
        Rank of that barcode (1 = most counts).
    curve_x, curve_y
        The curve the knee was located on (log10 rank, log10 total counts); for the smoothed
        knee, kneed's polynomial fit.
    """

    min_counts: float
    rank: int
    curve_x: np.ndarray
    curve_y: np.ndarray


def ranked_totals(total_counts: np.ndarray, lower: float = DEFAULT_LOWER) -> np.ndarray:
    """Total counts of the barcodes with at least ``lower`` (and > 0) counts, largest first."""
    totals = np.asarray(total_counts, dtype=float)
    return np.sort(totals[(totals >= lower) & (totals > 0)])[::-1]


def barcode_rank_curve(total_counts: np.ndarray, lower: float = DEFAULT_LOWER) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 rank, log10 total counts)`` of the barcodes with at least ``lower`` (and > 0) counts."""
    totals = ranked_totals(total_counts, lower)
    return np.log10(np.arange(1, totals.size + 1)), np.log10(totals)


def knee(total_counts: np.ndarray, lower: float = DEFAULT_LOWER) -> Knee | None:
    """The knee of the barcode-rank curve, or ``None`` when kneed finds none (or the curve has
    fewer than :data:`MIN_BARCODES` barcodes)."""
    x, y = barcode_rank_curve(total_counts, lower)
    if x.size < MIN_BARCODES:
        return None
    located = _locate(x, y, interp_method="interp1d")
    return None if located is None else _at(located, total_counts, lower, x, y)


def smoothed_knee(
    total_counts: np.ndarray,
    lower: float = DEFAULT_LOWER,
    *,
    n_points: int = DEFAULT_POINTS,
    polynomial_degree: int = DEFAULT_DEGREE,
) -> Knee | None:
    """The knee of the smoothed barcode-rank curve (see the module docstring), or ``None``."""
    x, y = barcode_rank_curve(total_counts, lower)
    if x.size < MIN_BARCODES:
        return None
    grid = np.linspace(x[0], x[-1], n_points)
    located = _locate(grid, np.interp(grid, x, y), interp_method="polynomial", polynomial_degree=polynomial_degree)
    if located is None:
        return None
    fit = np.polyval(np.polyfit(grid, np.interp(grid, x, y), polynomial_degree), grid)
    return _at(located, total_counts, lower, grid, fit)


def _locate(x: np.ndarray, y: np.ndarray, **kwargs) -> float | None:
    from kneed import KneeLocator  # heavy (~0.8 s, through its plotting imports): imported on use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns when it finds no knee; None says it
        found = KneeLocator(x, y, curve="concave", direction="decreasing", **kwargs).knee
    return None if found is None else float(found)


def _at(knee_x: float, total_counts: np.ndarray, lower: float, curve_x: np.ndarray, curve_y: np.ndarray) -> Knee:
    totals = ranked_totals(total_counts, lower)
    rank = int(np.clip(round(10**knee_x), 1, totals.size))
    return Knee(min_counts=float(totals[rank - 1]), rank=rank, curve_x=curve_x, curve_y=curve_y)
