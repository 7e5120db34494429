"""Figures of a finished run, written to OUTPUT_DIR/figures/ at the end of training and by --eval-only.

    confusion_<target>.png    row-normalised confusion matrix per target domain, class names on the axes
    per_class_accuracy.png    accuracy per class on the source validation split and on each target domain
    showcase.png              as the paper's Figures 3-4: a source clip and a few target clips, each as its
                              sampled frames in a row with the top-5 class confidences as bars (true class
                              green, a wrong top-1 orange)
    training_curves.png       loss terms, training accuracy (and per-epoch source-val accuracy) and learning
                              rate, read from the run's own log.txt

Drawing uses matplotlib's object API (Figure + Agg canvas): no display and no pyplot global state.
`draw_run_figures` is what the trainer calls; a figure that cannot be drawn is a warning, never an error.
"""
import glob
import os
import os.path as osp
import re
import sys
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

GREEN, ORANGE, GREY = "#2ca02c", "#ff7f0e", "#9e9e9e"
DPI = 90
MAX_NAME = 22  # class names longer than this are shortened on the axes


def short(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "\u2026"


def save(fig: Figure, path: str) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------------------------- confusion
def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Row-normalised: entry (i, j) is the fraction of class-i clips predicted as j (rows without clips: 0)."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (labels, pred), 1)
    totals = counts.sum(1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def plot_confusion(pred: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str, path: str) -> str:
    k = len(class_names)
    matrix = confusion_matrix(pred, labels, k)
    side = min(3 + 0.45 * k, 16)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [short(n) for n in class_names], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, [short(n) for n in class_names], fontsize=8)
    if k <= 20:  # numbers stay readable up to about 20 classes
        for i in range(k):
            for j in range(k):
                if matrix[i, j] > 0:
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} (accuracy {100 * (pred == labels).mean():.1f}%, n={len(labels)})")
    return save(fig, path)


# ---------------------------------------------------------------------------------------------- per class
def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy (%) per class; NaN for a class without clips."""
    acc = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            acc[c] = 100.0 * (pred[mask] == c).mean()
    return acc


def plot_per_class(splits: Dict[str, Tuple[np.ndarray, np.ndarray]], class_names: Sequence[str], path: str) -> str:
    """splits: name -> (pred, labels), e.g. {"source val: studio": ..., "target: street": ...}."""
    k, s = len(class_names), len(splits)
    width = 0.8 / max(s, 1)
    fig = Figure(figsize=(min(4 + 0.5 * k * max(s, 2) / 2, 20), 4.2))
    ax = fig.add_subplot()
    colors = ["#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    for i, (name, (pred, labels)) in enumerate(splits.items()):
        acc = per_class_accuracy(pred, labels, k)
        ax.bar(np.arange(k) + (i - (s - 1) / 2) * width, np.nan_to_num(acc), width, label=name,
               color=colors[i % len(colors)])
    ax.set_xticks(np.arange(k), [short(n) for n in class_names], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Per-class accuracy: source validation vs target domains")
    ax.legend(fontsize=8, ncol=min(s, 4), loc="upper center", bbox_to_anchor=(0.5, -0.28))
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


# ---------------------------------------------------------------------------------------------- showcase
class ShowcaseClip:
    def __init__(self, frames: np.ndarray, probs: np.ndarray, label: int, caption: str):
        self.frames = frames  # (M, H, W, 3) uint8, the frames the model saw (test-time sampling)
        self.probs = probs  # (K,)
        self.label = label
        self.caption = caption


def frame_strip(frames: np.ndarray, gap: int = 2) -> np.ndarray:
    """The clip's frames side by side with a white gap: one image, so one axis per clip (fast to draw)."""
    m, h, w, c = frames.shape
    strip = np.full((h, m * w + (m - 1) * gap, c), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        strip[:, i * (w + gap):i * (w + gap) + w] = frame
    return strip


def plot_showcase(clips: Sequence[ShowcaseClip], class_names: Sequence[str], path: str, top: int = 5) -> str:
    """One row per clip: its frames, then the top-`top` confidences (true class green, wrong top-1 orange)."""
    m = max(len(c.frames) for c in clips)
    fig = Figure(figsize=(1.2 * m + 3.6, 1.25 * len(clips) + 0.4), layout="constrained")
    grid = fig.add_gridspec(len(clips), 2, width_ratios=[1.2 * m, 3.0])
    for row, clip in enumerate(clips):
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(frame_strip(np.asarray(clip.frames, dtype=np.uint8)))
        ax.set_axis_off()
        ax.set_title(clip.caption, fontsize=8, loc="left")
        ax = fig.add_subplot(grid[row, 1])
        order = np.argsort(-clip.probs)[:top]
        colors = [GREEN if c == clip.label else (ORANGE if rank == 0 else GREY) for rank, c in enumerate(order)]
        ax.barh(np.arange(len(order)), clip.probs[order], color=colors)
        ax.set_yticks(np.arange(len(order)), [short(class_names[c]) for c in order], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=7)
        if row == len(clips) - 1:
            ax.set_xlabel("confidence", fontsize=8)
    fig.suptitle("sampled frames and top-5 confidences; green: true class, orange: wrong top-1", fontsize=9)
    return save(fig, path)


def pick_showcase(labels: np.ndarray, pred: np.ndarray, domains: np.ndarray, num_domains: int,
                  per_domain: int = 2, seed: int = 0) -> List[int]:
    """Per domain, a correctly classified clip and a misclassified one (or any, when a kind is absent), drawn
    at random with a fixed seed, so that the clips shown vary in class but not between calls."""
    rng = np.random.default_rng(seed)
    picked = []
    for d in range(num_domains):
        idx = np.flatnonzero(domains == d)
        right, wrong = idx[pred[idx] == labels[idx]], idx[pred[idx] != labels[idx]]
        chosen = [int(rng.choice(group)) for group in (right, wrong) if len(group)]
        rest = [int(i) for i in rng.permutation(idx) if int(i) not in chosen]
        picked += (chosen + rest)[:per_domain]
    return picked


# ---------------------------------------------------------------------------------------------- curves
_LINE = re.compile(r"epoch \[(\d+)/(\d+)\]\s+batch \[(\d+)/(\d+)\](.*)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_METER = re.compile(rf"([A-Za-z_][\w/]*) ({_NUMBER}) \(({_NUMBER})\)")
_LR = re.compile(rf"\blr ({_NUMBER})")
_VAL_ACC = re.compile(rf"\* accuracy: ({_NUMBER})%")
_VAL_HEADER = "Scoring the val split"  # the engine's EVALUATION_HEADER for "val" (framework/builtin/selection.py)
_NOT_CURVES = ("time", "data")  # timing meters, not training curves


def log_files(output_dir: str) -> List[str]:
    """log.txt, then the logs of resumed sessions (log.txt-<time>) in time order."""
    first = osp.join(output_dir, "log.txt")
    return ([first] if osp.isfile(first) else []) + sorted(glob.glob(first + "-*"))


def parse_training_log(paths: Sequence[str]) -> Dict[str, Dict[float, float]]:
    """Series {name: {x: value}} of Dassl batch-print lines; x = epoch - 1 + batch / batches (a resumed
    session overwrites the points it repeats). Also `val_accuracy` per epoch from the per-epoch evaluation."""
    series: Dict[str, Dict[float, float]] = {}
    for path in paths:
        epoch, in_val = None, False
        with open(path, errors="replace") as f:
            for line in f:
                match = _LINE.search(line)
                if match:
                    ep, _, batch, batches, rest = match.groups()
                    epoch = int(ep)
                    x = epoch - 1 + int(batch) / int(batches)
                    for name, value, _avg in _METER.findall(rest):
                        if name not in _NOT_CURVES:
                            series.setdefault(name, {})[x] = float(value)
                    lr = _LR.search(rest)
                    if lr:
                        series.setdefault("lr", {})[x] = float(lr.group(1))
                    continue
                if line.startswith(_VAL_HEADER):
                    in_val = True
                elif in_val and epoch is not None:
                    acc = _VAL_ACC.search(line)
                    if acc:
                        series.setdefault("val_accuracy", {})[float(epoch)] = float(acc.group(1))
                        in_val = False
    return series


def plot_training_curves(series: Dict[str, Dict[float, float]], path: str, title: str = "") -> str:
    losses = [k for k in series if k.startswith(("loss", "max_loss")) or k == "loss"]
    costs = [k for k in series if k.startswith("cost")]
    panels = [("loss terms", losses), ("transport cost c", costs), ("accuracy (%)", ["acc", "val_accuracy"]),
              ("learning rate", ["lr"])]
    panels = [(name, [k for k in keys if k in series]) for name, keys in panels]
    panels = [p for p in panels if p[1]]
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key in keys:
            xs = sorted(series[key])
            label = "source val (per epoch)" if key == "val_accuracy" else ("train batch" if key == "acc" else key)
            style = dict(marker="o", lw=1.5) if key == "val_accuracy" else dict(lw=1)
            ax.plot(xs, [series[key][x] for x in xs], label=label, **style)
        if name == "transport cost c":
            ax.set_yscale("symlog", linthresh=1e-6)  # costs are tiny early on and grow by orders of magnitude
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if len(keys) > 1 or name == "accuracy (%)":
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


# ---------------------------------------------------------------------------------------------- grid table
SeedValues = Dict[object, float]  # seed -> accuracy of one table cell


def plot_grid_table(rows: Sequence[Tuple[str, Sequence[Optional[SeedValues]], Optional[SeedValues]]],
                    columns: Sequence[str], path: str, xlabel: str, chance: Optional[float] = None) -> str:
    """A results table as a dot plot, one line per row: per column the mean over seeds with a +- std bar and
    each seed as a faint dot, and the row's average over the columns as a black diamond. Rows are
    (label, one seed->value dict or None per column, the average's seed->value dict or None); rows with
    no finished cell are left out, a missing cell is simply not drawn."""
    rows = [r for r in rows if any(r[1]) or r[2]]
    if not rows:
        raise ValueError("no finished cell to draw")
    fig = Figure(figsize=(8, 0.42 * len(rows) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i % 10}" for i in range(len(columns))]
    offsets = np.linspace(-0.28, 0.28, len(columns) + 1)  # the last slot is the average's
    labelled = set()  # each column and the average enter the legend once

    def legend_label(name: str) -> Optional[str]:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for i, (_, cells, average) in enumerate(rows):
        y = len(rows) - 1 - i
        for j, values in enumerate(cells):
            if values:
                points = np.array(list(values.values()), dtype=float)
                ax.errorbar(points.mean(), y + offsets[j], xerr=points.std(), fmt="o", ms=4, color=colours[j],
                            capsize=2, label=legend_label(columns[j]))
                ax.scatter(points, np.full(len(points), y + offsets[j]), s=6, color=colours[j], alpha=0.35)
        if average:
            points = np.array(list(average.values()), dtype=float)
            ax.errorbar(points.mean(), y + offsets[-1], xerr=points.std(), fmt="D", ms=5, color="black",
                        capsize=2, label=legend_label("average"))
    if chance is not None:
        ax.axvline(chance, color=GREY, ls="--", lw=1, label="chance")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _, _ in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(columns) + 2, 4),
              frameon=False)
    fig.tight_layout()
    return save(fig, path)


# ---------------------------------------------------------------------------------------------- the hook
def _attempt(what: str, draw: Callable[[], object], written: List[str]) -> None:
    try:
        result = draw()
    except Exception as e:  # a figure is a by-product: drawing must never fail a run
        print(f"Warning: could not draw the {what} figure ({type(e).__name__}: {e}); the run itself is fine")
        if os.environ.get("VIDEODG_FIGURE_TRACEBACK"):
            traceback.print_exc()
        return
    if isinstance(result, str):
        written.append(result)
    elif result:
        written.extend(result)


def class_names_of(trainer, num_classes: int) -> List[str]:
    names = getattr(trainer, "lab2cname", None) or {}
    return [str(names.get(c, c)) for c in range(num_classes)]


def load_clip_frames(loader, index: int, cfg) -> np.ndarray:
    """The frames the model saw for item `index` of an evaluation loader (centre frame of each segment)."""
    from video.readers import read_sampled_frames
    from video.sampling import sample_segment_indices
    dataset = loader.dataset
    backend = cfg.DATASET.get("VIDEO_BACKEND", "auto")
    return read_sampled_frames(dataset.data_source[index],
                               lambda n: sample_segment_indices(n, dataset.num_segments, train=False), backend)


def check_aligned(preds, loader, what: str) -> None:
    """Prediction i must be item i of the loader's dataset (evaluation loaders are sequential); clips left out
    as unreadable (SKIP_CORRUPT) break that correspondence."""
    if len(getattr(preds, "skipped", ())) or len(preds.labels) != len(loader.dataset):
        raise RuntimeError(f"{what}: unreadable clips were left out, so predictions no longer match clip files")


def draw_run_figures(trainer, test, val=None) -> List[str]:
    """All figures of a run from its end-of-run predictions (trainers.results.Predictions of the target test
    set and of the source validation split); returns the paths written."""
    cfg = trainer.cfg
    out = osp.join(cfg.OUTPUT_DIR, "figures")
    k = test.probs.shape[1]
    names = class_names_of(trainer, k)
    targets, sources = list(cfg.DATASET.TARGET_DOMAINS), list(cfg.DATASET.SOURCE_DOMAINS)
    pred = test.probs.argmax(1)
    written: List[str] = []
    for d, domain in enumerate(targets):
        mask = test.domains == d
        if mask.any():
            _attempt(f"confusion matrix of {domain}", lambda mask=mask, domain=domain: plot_confusion(
                pred[mask], test.labels[mask], names, f"{cfg.TRAINER.NAME} on target {domain}",
                osp.join(out, f"confusion_{domain}.png")), written)

    def per_class():
        splits = {}
        if val is not None:
            splits[f"source val ({','.join(sources)})"] = (val.probs.argmax(1), val.labels)
        for d, domain in enumerate(targets):
            mask = test.domains == d
            if mask.any():
                splits[f"target {domain}"] = (pred[mask], test.labels[mask])
        return plot_per_class(splits, names, osp.join(out, "per_class_accuracy.png"))
    _attempt("per-class accuracy", per_class, written)

    def showcase():
        clips = []
        check_aligned(test, trainer.test_loader, "target test set")
        if val is not None and trainer.val_loader is not None and len(val.labels):
            check_aligned(val, trainer.val_loader, "source validation split")
            i = pick_showcase(val.labels, val.probs.argmax(1), np.zeros_like(val.labels), 1, per_domain=1)[0]
            clips.append(ShowcaseClip(load_clip_frames(trainer.val_loader, i, cfg), val.probs[i],
                                      int(val.labels[i]), f"source {sources[0]}: {short(names[val.labels[i]])}"))
        for i in pick_showcase(test.labels, pred, test.domains, len(targets)):
            clips.append(ShowcaseClip(load_clip_frames(trainer.test_loader, i, cfg), test.probs[i],
                                      int(test.labels[i]),
                                      f"target {targets[test.domains[i]]}: {short(names[test.labels[i]])}"))
        return plot_showcase(clips, names, osp.join(out, "showcase.png")) if clips else None
    _attempt("showcase", showcase, written)

    def curves():
        sys.stdout.flush()  # the log file is the tee of stdout: write out what it still buffers
        series = parse_training_log(log_files(cfg.OUTPUT_DIR))
        if not any(k in series for k in ("acc", "lr")):
            print("Figures: no training lines in this run's log (e.g. --eval-only): no training curves")
            return None
        return plot_training_curves(series, osp.join(out, "training_curves.png"),
                                    title=f"{cfg.TRAINER.NAME}, {','.join(sources)} ({cfg.OUTPUT_DIR})")
    _attempt("training curves", curves, written)
    if written:
        print(f"Figures written to {out}: " + ", ".join(osp.basename(p) for p in written))
    return written
