"""DAVIS 2017 semi-supervised metrics in NumPy: J (region), F (boundary), their statistics, J&F.

Shapes: label maps H x W or T x H x W uint8 (0 = background, 1..K objects); binary masks H x W
bool; per-frame scores 1-D float64 arrays.

Rules, as the official davis2017-evaluation code (``davis2017/metrics.py``, ``evaluation.py``,
``utils.py``, ``davis.py``, ``results.py``) applies them:

* Ground truth: void pixels (255) become background; the objects are 1..max(first frame).
* The first and the last frame of every sequence are not evaluated.
* J = |gt & pred| / |gt | pred|, and 1 when both are empty.
* F: boundaries by ``seg2bmap`` (a pixel is boundary when it differs from its right, lower or
  lower-right neighbour), matched within a disk of radius ``ceil(0.008 * diagonal)`` pixels
  (binary dilation with zeros outside the image); precision/recall are 1/0, 0/1 or 1/1 when one or
  both boundaries are empty; F = 2PR / (P + R), 0 when P + R = 0.
* Per object: mean, recall (fraction of frames > 0.5) and decay (mean of the first quarter minus
  mean of the last quarter, with the official ``round(linspace(1, n, 5) + 1e-10) - 1`` bins).
* Global: every object weighs the same; J&F = (mean J + mean F) / 2.

One deliberate difference: the official decay casts its bin indices to uint8, which wraps for
sequences of more than 256 evaluated frames; here they are plain integers (identical below that).
A prediction with an object id above the ground truth's is an error, as in the official code; an
object never predicted counts as empty masks (the official code stops with an error there).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosx.errors import InputDataError

BOUND_TH = 0.008


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    """Region similarity J of two H x W binary masks (1 when both are empty)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of an H x W binary mask (the official ``_seg2bmap``)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Disk radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a boundary tolerance in pixels must be whole, got {bound_th}")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def disk(radius: int) -> np.ndarray:
    """(2r+1) x (2r+1) bool disk: offsets (dy, dx) with dx^2 + dy^2 <= r^2 (as skimage's disk)."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def dilate(b: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of an H x W bool map by ``disk(radius)``, zeros outside the map.

    Each disk row is a horizontal run of half-width a(dy) = max{a : a^2 + dy^2 <= r^2}: the map
    is dilated horizontally by each distinct a (prefix sums), then shifted by dy and OR-ed.
    """
    b = b.astype(bool)
    h, w = b.shape
    if radius <= 0 or not b.any():
        return b.copy()
    csum = np.zeros((h, w + 1), np.int32)  # H x (W + 1) prefix sums along rows
    np.cumsum(b, axis=1, out=csum[:, 1:])
    cols = np.arange(w)
    runs: dict[int, np.ndarray] = {}
    out = np.zeros_like(b)
    for dy in range(-radius, radius + 1):
        a = math.isqrt(radius * radius - dy * dy)
        if a not in runs:
            hi = np.minimum(cols + a + 1, w)
            lo = np.maximum(cols - a, 0)
            runs[a] = (csum[:, hi] - csum[:, lo]) > 0  # H x W horizontal dilation by a
        run = runs[a]
        # out[y] |= run[y - dy] for the rows where both exist
        if dy >= 0:
            out[dy:] |= run[: h - dy]
        else:
            out[: h + dy] |= run[-dy:]
    return out


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of two H x W binary masks (the official ``f_measure``)."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    radius = boundary_tolerance(*pred.shape, bound_th)
    fg_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_fg = int(np.count_nonzero(fg_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        # Dilate only over the bounding box of both boundaries grown by the radius: outside it
        # neither boundary has pixels, so the matches are the same.
        both = fg_b | gt_b
        rows = np.flatnonzero(both.any(1))
        cols = np.flatnonzero(both.any(0))
        h, w = pred.shape
        box = (
            max(int(rows[0]) - radius, 0),
            min(int(rows[-1]) + radius + 1, h),
            max(int(cols[0]) - radius, 0),
            min(int(cols[-1]) + radius + 1, w),
        )
        y0, y1, x0, x1 = box
        fg_c, gt_c = fg_b[y0:y1, x0:x1], gt_b[y0:y1, x0:x1]
        fg_dil = dilate(fg_c, radius)
        gt_dil = dilate(gt_c, radius)
        precision = np.count_nonzero(fg_c & gt_dil) / n_fg
        recall = np.count_nonzero(gt_c & fg_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame scores (the official ``db_statistics``)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(np.nanmean(v))
    recall = float(np.nanmean(v > 0.5))
    ids = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    with np.errstate(invalid="ignore"):
        first = np.nanmean(bins[0]) if bins[0].size else math.nan
        last = np.nanmean(bins[3]) if bins[3].size else math.nan
    return mean, recall, float(first - last)


@dataclass(frozen=True)
class ObjectScores:
    """J and F of one object over the evaluated frames (all but the first and last).

    Attributes:
        name: ``<sequence>_<object id>`` as the official per-object table names it.
        j: per-frame J.
        f: per-frame F.
    """

    name: str
    j: np.ndarray
    f: np.ndarray

    @property
    def j_stats(self) -> tuple[float, float, float]:
        """(mean, recall, decay) of J."""
        return statistics(self.j)

    @property
    def f_stats(self) -> tuple[float, float, float]:
        """(mean, recall, decay) of F."""
        return statistics(self.f)

    def to_dict(self) -> dict:
        (jm, jr, jd), (fm, fr, fd) = self.j_stats, self.f_stats
        return {
            "object": self.name,
            "J&F-Mean": (jm + fm) / 2,
            "J-Mean": jm,
            "J-Recall": jr,
            "J-Decay": jd,
            "F-Mean": fm,
            "F-Recall": fr,
            "F-Decay": fd,
        }


MEASURES = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def summarise(objects: list[ObjectScores]) -> dict:
    """The seven official global measures over objects weighted equally."""
    if not objects:
        return {k: math.nan for k in MEASURES}
    rows = np.array([[*o.j_stats, *o.f_stats] for o in objects])  # objects x 6
    jm, jr, jd, fm, fr, fd = rows.mean(0).tolist()
    return dict(zip(MEASURES, ((jm + fm) / 2, jm, jr, jd, fm, fr, fd), strict=True))


@dataclass(frozen=True)
class SequenceScores:
    """All objects of one sequence.

    Attributes:
        name: the sequence name.
        frames: frames evaluated (all but the first and last).
        objects: per-object scores.
    """

    name: str
    frames: int
    objects: list[ObjectScores] = field(default_factory=list)

    def summary(self) -> dict:
        """The seven measures over this sequence's objects."""
        return summarise(self.objects)


def evaluate_labels(
    name: str, gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH
) -> SequenceScores:
    """Score one sequence given as label maps.

    Args:
        name: sequence name (objects are named ``<name>_<id>``).
        gt: T x H x W ground-truth labels (void 255 already mapped to 0), T >= 3.
        pred: (T - 2) x H x W predicted labels for frames 1 .. T-2, or T x H x W (then the first
            and last are dropped).
        bound_th: F's boundary tolerance (fraction of the diagonal, or pixels when >= 1).

    Raises:
        InputDataError: too few frames, mismatched shapes, or a predicted id without ground truth.
    """
    if gt.ndim != 3 or gt.shape[0] < 3:
        raise InputDataError(
            f"{name}: ground truth has {gt.shape[0] if gt.ndim == 3 else 0} frames; at least 3 "
            "are needed (the first and last frames are not evaluated)"
        )
    # The official code counts objects on the sequence's first frame, before dropping it.
    num_objects = int(np.max(gt[0]))
    gt = gt[1:-1]
    if pred.shape[0] == gt.shape[0] + 2:
        pred = pred[1:-1]
    if pred.shape != gt.shape:
        raise InputDataError(
            f"{name}: predictions {pred.shape} do not match the ground truth {gt.shape} "
            "(frames x height x width); predict every frame at the annotation size"
        )
    return SequenceScores(name, gt.shape[0], _score_objects(name, gt, pred, num_objects, bound_th))


def _score_objects(name, gt, pred, num_objects, bound_th) -> list[ObjectScores]:
    top = int(pred.max()) if pred.size else 0
    if top > num_objects:
        raise InputDataError(
            f"{name}: predictions contain object id {top} but the ground truth has "
            f"{num_objects} object(s); predict only ids 1..{num_objects}"
        )
    out = []
    for k in range(1, num_objects + 1):
        j = np.array([jaccard(g == k, p == k) for g, p in zip(gt, pred, strict=True)])
        f = np.array([f_measure(p == k, g == k, bound_th) for g, p in zip(gt, pred, strict=True)])
        out.append(ObjectScores(f"{name}_{k}", j, f))
    return out


@dataclass(frozen=True)
class EvalResult:
    """Scores of every sequence, the global measures and the per-object table.

    Attributes:
        sequences: per-sequence scores in name order.
    """

    sequences: list[SequenceScores]

    @property
    def objects(self) -> list[ObjectScores]:
        """Every object of every sequence."""
        return [o for s in self.sequences for o in s.objects]

    def summary(self) -> dict:
        """The seven official global measures (objects weighted equally)."""
        return summarise(self.objects)

    def to_dict(self) -> dict:
        """A JSON-ready dict: global, per_sequence and per_object."""
        return {
            "global": self.summary(),
            "per_sequence": [
                {"sequence": s.name, "objects": len(s.objects), "frames": s.frames, **s.summary()}
                for s in self.sequences
            ],
            "per_object": [o.to_dict() for o in self.objects],
        }


def evaluate_folders(pred_dir: Path, gt_dir: Path, bound_th: float = BOUND_TH) -> EvalResult:
    """Evaluate predicted label PNGs against DAVIS-layout ground truth.

    ``gt_dir`` is a DAVIS root, a folder of sequence folders, or one sequence folder of label
    PNGs; ``pred_dir`` mirrors it (``pred_dir/<sequence>/<frame>.png``, or the PNGs directly when
    ``gt_dir`` is one sequence). Predictions are read for the evaluated ground-truth frame names.

    Raises:
        InputDataError: missing folders/files, unreadable PNGs, mismatched sizes or ids.
    """
    from vosx.tracker_runtime.io import (
        find_sequences,
        list_label_pngs,
        read_label_sequence,
        read_labels,
    )

    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if not pred_dir.is_dir():
        raise InputDataError(f"{pred_dir}: no such predictions folder; give the folder of PNGs")
    seqs = find_sequences(gt_dir)
    single = len(seqs) == 1 and seqs[0] in (gt_dir, gt_dir / "Annotations" / "480p")
    results = []
    for seq in seqs:
        gt = read_label_sequence(seq)  # T x H x W
        if gt.shape[0] < 3:
            raise InputDataError(
                f"{seq}: {gt.shape[0]} annotated frame(s); at least 3 are needed "
                "(the first and last frames are not evaluated)"
            )
        names = [p.stem for p in list_label_pngs(seq)][1:-1]
        pdir = pred_dir if single and list_label_pngs(pred_dir) else pred_dir / seq.name
        if not pdir.is_dir():
            raise InputDataError(
                f"{pdir}: no predictions for sequence {seq.name}; "
                f"write them as {pred_dir}/{seq.name}/<frame>.png"
            )
        pred = np.empty((len(names), *gt.shape[1:]), np.uint8)
        for i, name in enumerate(names):
            path = pdir / f"{name}.png"
            if not path.is_file():
                raise InputDataError(
                    f"{path}: missing prediction for frame {name} of {seq.name}; "
                    "predict every frame with the ground truth's file names"
                )
            lab = read_labels(path)
            if lab.shape != gt.shape[1:]:
                raise InputDataError(
                    f"{path}: prediction is {lab.shape[0]}x{lab.shape[1]} but the ground truth "
                    f"is {gt.shape[1]}x{gt.shape[2]}; write predictions at the annotation size"
                )
            pred[i] = lab
        results.append(evaluate_labels(seq.name, gt, pred, bound_th))
    return EvalResult(results)


def format_table(result: EvalResult) -> str:
    """A plain-text per-sequence table with the global row last (fixed width, pipe-friendly)."""
    short = ("J&F", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
    names = [s.name for s in result.sequences] + [f"all ({len(result.objects)} objects)"]
    width = max(8, *(len(n) for n in names))
    head = f"{'sequence':<{width}}  {'obj':>3}  " + "  ".join(f"{h:>8}" for h in short)
    lines = [head, "-" * len(head)]

    def row(name: str, n: int, summary: dict) -> str:
        cells = "  ".join(f"{summary[m]:8.4f}" for m in MEASURES)
        return f"{name:<{width}}  {n:>3}  {cells}"

    for s in result.sequences:
        lines.append(row(s.name, len(s.objects), s.summary()))
    lines.append("-" * len(head))
    lines.append(row(names[-1], len(result.objects), result.summary()))
    return "\n".join(lines)
