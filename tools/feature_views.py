"""Feature views of a trained run: t-SNE of source and target clip features, coloured by domain and by class.

    python tools/feature_views.py output/synthetic_dg/studio/APN_ADAstar/smallcnn_cpu/seed1 [--root data] [--load-epoch N]
        [--max-per-domain 200] [--levels global II III] [--out FILE.png]

Rebuilds the run's model and data from its config.yaml, loads its deployed checkpoint (model-best.pth.tar, or
model.pth.tar-N), reads the features of source-validation clips and target clips, and embeds each feature level
with t-SNE (scikit-learn, fixed seed). Levels: for APN the pyramid's r_global, R^II and R^III (the levels the
transport cost of video ADA is defined on); for other heads the last hidden layer (the classifier's input).
Writes RUN_DIR/figures/feature_views.png: one row per level, coloured by domain (left) and by class (right).
Where source and target points overlap, the features do not tell the domains apart.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Sequence

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

import components  # noqa: E402
from ensemble import load_run_config  # noqa: E402
from framework import build_trainer  # noqa: E402

LEVEL_TITLES = {"global": "r_global (level I)", "II": "R^II", "III": "R^III", "last_hidden": "last hidden layer"}


def default_levels(model) -> List[str]:
    """The pyramid levels where the head has them; else the last hidden layer."""
    levels = [lvl for lvl in model.levels if lvl != "last_hidden"]
    return levels or ["last_hidden"]


@torch.no_grad()
def collect_features(trainer, loader, levels: Sequence[str], max_per_domain: int, desc: str,
                     seed: int = 0) -> Dict[str, np.ndarray]:
    """Features, labels and domains of the loader's clips; then at most max_per_domain clips per domain,
    drawn at random with a fixed seed (evaluation loaders are ordered by class: the first N would not be)."""
    feats: Dict[str, List[np.ndarray]] = {lvl: [] for lvl in levels}
    labels, domains = [], []
    for batch in tqdm(loader, desc=f"features {desc}", leave=False, disable=not sys.stderr.isatty()):
        with trainer.autocast():
            out = trainer.model.features(batch["img"].to(trainer.device), levels)
        for lvl in levels:
            feats[lvl].append(out[lvl].float().cpu().numpy())
        labels.append(batch["label"].numpy())
        domains.append(batch["domain"].numpy())
    data = {**{lvl: np.concatenate(v) for lvl, v in feats.items()},
            "label": np.concatenate(labels), "domain": np.concatenate(domains)}
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(data["domain"] == d))[:max_per_domain]
                           for d in np.unique(data["domain"])])
    return {key: value[np.sort(keep)] for key, value in data.items()}


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))  # t-SNE needs perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def plot_views(points: Dict[str, np.ndarray], domain: np.ndarray, domain_names: Sequence[str], label: np.ndarray,
               class_names: Sequence[str], title: str, path: str) -> str:
    from matplotlib.figure import Figure
    from analysis.figures import save, short
    levels = list(points)
    fig = Figure(figsize=(10, 4.0 * len(levels)), layout="constrained")
    domain_cmap, class_cmap = "tab10", "tab20" if len(class_names) > 10 else "tab10"
    for row, lvl in enumerate(levels):
        xy = points[lvl]
        ax = fig.add_subplot(len(levels), 2, 2 * row + 1)
        for d, name in enumerate(domain_names):
            mask = domain == d
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=9, alpha=0.7, label=name,
                           marker="o" if d == 0 else "^", color=_colour(domain_cmap, d))
        ax.set_title(f"{LEVEL_TITLES.get(lvl, lvl)}: by domain", fontsize=10)
        ax.legend(fontsize=7, markerscale=1.5)
        ax = fig.add_subplot(len(levels), 2, 2 * row + 2)
        for c, name in enumerate(class_names):
            mask = label == c
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=9, alpha=0.7, color=_colour(class_cmap, c),
                           label=short(name) if len(class_names) <= 20 else None)
        ax.set_title(f"{LEVEL_TITLES.get(lvl, lvl)}: by class", fontsize=10)
        if len(class_names) <= 20:
            ax.legend(fontsize=6, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
        for a in fig.axes[-2:]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _colour(cmap: str, index: int):
    from matplotlib import colormaps
    colours = colormaps[cmap].colors
    return colours[index % len(colours)]


def main(args) -> None:
    components.register_all()
    run_dir = args.run_dir.rstrip("/")
    cfg = load_run_config(run_dir, args.root, output_dir=run_dir)  # nothing is written there but the figure
    trainer = build_trainer(cfg)
    trainer.load_model(run_dir, epoch=args.load_epoch)
    trainer.set_model_mode("eval")
    levels = args.levels or default_levels(trainer.model)
    sources, targets = list(cfg.DATASET.SOURCE_DOMAINS), list(cfg.DATASET.TARGET_DOMAINS)
    parts = []
    if trainer.val_loader is not None:
        parts.append(collect_features(trainer, trainer.val_loader, levels, args.max_per_domain, "source val",
                                      args.seed))
    else:
        print("No source validation split (DATASET.VAL_RATIO 0): showing target clips only")
    test = collect_features(trainer, trainer.test_loader, levels, args.max_per_domain, "target", args.seed)
    test["domain"] = test["domain"] + len(sources)  # source domains first, then the targets
    parts.append(test)
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    print(f"t-SNE of {len(data['label'])} clips ({', '.join(levels)})")
    points = {lvl: embed(data[lvl], seed=args.seed) for lvl in levels}
    names = getattr(trainer, "lab2cname", {}) or {}
    num_classes = trainer.num_classes
    class_names = [str(names.get(c, c)) for c in range(num_classes)]
    domain_names = [f"{s} (source val)" for s in sources] + [f"{t} (target)" for t in targets]
    out = args.out or osp.join(run_dir, "figures", "feature_views.png")
    title = f"{cfg.TRAINER.NAME} ({cfg.MODEL.HEAD.NAME}), {run_dir}: t-SNE of clip features"
    print(f"Written {plot_views(points, data['domain'], domain_names, data['label'], class_names, title, out)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="OUTPUT_DIR of a finished train.py run")
    parser.add_argument("--root", default="", help="datasets folder, if not the run's DATASET.ROOT")
    parser.add_argument("--load-epoch", type=int, help="load model.pth.tar-N (default: model-best.pth.tar)")
    parser.add_argument("--max-per-domain", type=int, default=200, help="clips per domain, drawn at random (t-SNE is O(n^2))")
    parser.add_argument("--levels", nargs="+", help="feature levels (default: pyramid levels, else last_hidden)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draw and of t-SNE")
    parser.add_argument("--out", default="", help="output PNG (default RUN_DIR/figures/feature_views.png)")
    return parser


if __name__ == "__main__":
    main(build_parser().parse_args())
