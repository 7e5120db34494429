"""Evaluate an ensemble of trained runs on the target domains (the paper's gamma ensemble, Section 5.1).

    python ensemble.py --model-dirs output/.../gamma0.001 output/.../gamma0.01 output/.../gamma0.1 output/.../gamma1 \
        --output-dir output/.../ensemble [--root data] [--load-epoch N]

Each directory is a train.py run; its config.yaml rebuilds the model and data and its best_val checkpoint
(or model.pth.tar-N) is loaded. Reported per target domain and pooled: every member, the most-confident-
member ensemble (each clip is classified by the member whose softmax is most confident: our reading of
the ensemble of Volpi et al. 2018 that the paper cites) and the softmax-average ensemble.
"""
import argparse
import os.path as osp
from typing import List, Tuple

import numpy as np

import components
from defaults import extend_cfg
from framework import build_trainer, get_cfg_default, setup_logger
from trainers.results import Predictions, collect_predictions, print_and_save, split_rows


def softmax_average(probs: List[np.ndarray]) -> np.ndarray:
    return np.mean(probs, axis=0)


def most_confident(probs: List[np.ndarray]) -> np.ndarray:
    """Per clip, the probabilities of the member with the highest maximum probability."""
    stacked = np.stack(probs)  # (members, N, K)
    best_member = stacked.max(axis=2).argmax(axis=0)  # (N,)
    return stacked[best_member, np.arange(stacked.shape[1])]


def load_run_config(model_dir: str, root: str, output_dir: str):
    path = osp.join(model_dir, "config.yaml")
    if not osp.isfile(path):
        raise FileNotFoundError(f'No config.yaml in "{model_dir}": pass the OUTPUT_DIR of a train.py run')
    cfg = get_cfg_default()
    extend_cfg(cfg)  # the keys of the registered components (components.register_all, in main)
    cfg.merge_from_file(path)
    if root:
        cfg.DATASET.ROOT = root
    cfg.OUTPUT_DIR = output_dir
    cfg.freeze()
    return cfg


def member_predictions(model_dir: str, args) -> Tuple[object, Predictions]:
    """The run's config and its predictions on the target test set."""
    cfg = load_run_config(model_dir, args.root, args.output_dir)
    trainer = build_trainer(cfg)
    trainer.load_model(model_dir, epoch=args.load_epoch)
    trainer.set_model_mode("eval")
    return cfg, collect_predictions(trainer.model_inference, trainer.test_loader, trainer.device,
                                    desc=osp.basename(model_dir.rstrip("/")))


def main(args) -> None:
    components.register_all()
    setup_logger(args.output_dir)
    members, cfgs = [], []
    for model_dir in args.model_dirs:
        cfg, preds = member_predictions(model_dir, args)
        if members and not np.array_equal(preds.labels, members[0].labels):
            raise ValueError(f'"{model_dir}" was evaluated on other target clips than "{args.model_dirs[0]}"; '
                             "ensemble members must share dataset and domains")
        cfgs.append(cfg)
        members.append(preds)
    targets = cfgs[0].DATASET.TARGET_DOMAINS
    labels, domains = members[0].labels, members[0].domains
    rows = []
    for model_dir, preds in zip(args.model_dirs, members):
        rows += [{"model": osp.basename(model_dir.rstrip("/")), **r} for r in split_rows("target", targets, preds)]
    for name, combine in (("most-confident", most_confident), ("softmax-average", softmax_average)):
        combined = Predictions(combine([m.probs for m in members]), labels, domains)
        rows += [{"model": f"ensemble: {name}", **r} for r in split_rows("target", targets, combined)]
    print_and_save(rows, args.output_dir, title=f"Ensemble of {len(members)} runs", basename="ensemble_results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate an ensemble of train.py runs on their target domains")
    parser.add_argument("--model-dirs", nargs="+", required=True, help="OUTPUT_DIRs of the member runs")
    parser.add_argument("--output-dir", required=True, help="where the log and ensemble_results.* go")
    parser.add_argument("--root", default="", help="DATASET.ROOT, if different from the members' runs")
    parser.add_argument("--load-epoch", type=int, help="load model.pth.tar-N instead of model-best.pth.tar")
    return parser


if __name__ == "__main__":
    main(build_parser().parse_args())
