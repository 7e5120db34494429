"""The oracle criterion's data and rows (DATASET.ORACLE_HOLDOUT): a held-out share of each target domain, chosen
by group and class with a fixed seed, left out of the reported target test; a trained run scores its last-epoch
model on it into results.json under its own splits, which the printed table and results.csv leave out."""
import csv
import os.path as osp
from collections import Counter

import pytest

from framework import build_dataset
from tests.helpers import TINY_SYNTHETIC, SYNTHETIC_ARGS, read_results, run_train
from tests.test_own_data import CLASSES, cfg_for, own_videos


def person(item) -> str:
    return osp.basename(item.impath)[:3]


def test_the_holdout_is_a_grouped_class_stratified_share_of_each_target_domain_and_leaves_the_test(tmp_path):
    own_videos(tmp_path, domains=("lab", "street", "park"), people=4, takes=2)  # 3 classes x 4 people x 2 takes
    keys = dict(VIDEO_LIST__GROUP_PATTERN=r"/(p\d+)_")
    plain = build_dataset(cfg_for(tmp_path, ["lab"], ["street", "park"], **keys))
    cfg = cfg_for(tmp_path, ["lab"], ["street", "park"], **keys)
    cfg.DATASET.ORACLE_HOLDOUT = 0.25
    held = build_dataset(cfg)
    assert plain.oracle == [] and len(plain.test) == 48
    assert len(held.oracle) + len(held.test) == 48
    test_paths, oracle_paths = {i.impath for i in held.test}, {i.impath for i in held.oracle}
    assert not test_paths & oracle_paths  # the held-out clips are not reported
    for domain in (0, 1):  # each target domain: a quarter of each class, no person on both sides
        oracle = [i for i in held.oracle if i.domain == domain]
        test = [i for i in held.test if i.domain == domain]
        assert Counter(i.label for i in oracle) == {label: 2 for label in range(len(CLASSES))}
        assert not {person(i) for i in oracle} & {person(i) for i in test}
    # the same clips every time (a fixed split seed), whatever the run
    again = build_dataset(cfg)
    assert sorted(i.impath for i in again.oracle) == sorted(oracle_paths)
    assert sorted(i.impath for i in held.train_x) == sorted(i.impath for i in plain.train_x)  # sources untouched
    cfg.DATASET.ORACLE_HOLDOUT = 1.0
    with pytest.raises(ValueError, match="ORACLE_HOLDOUT is 1: .*between 0 and 1"):
        build_dataset(cfg)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_scores_its_last_epoch_on_the_holdout_into_results_json_only(data_root, tmp_path):
    out = tmp_path / "run"
    proc = run_train(["--root", data_root, "--trainer", "VideoVanilla", "--config-file",
                      "configs/trainers/VideoVanilla/smallcnn_cpu.yaml", *SYNTHETIC_ARGS, "--output-dir", str(out),
                      "OPTIM.MAX_EPOCH", "2", "DATASET.ORACLE_HOLDOUT", "0.34", *TINY_SYNTHETIC])
    rows = read_results(str(out))
    # 8 classes x 3 clips per target domain; 0.34 of each class (1 clip) held out
    assert rows[("target", "pooled")]["n"] == 3 * 8 * 2
    assert rows[("oracle holdout", "pooled")]["n"] == 3 * 8 and rows[("oracle holdout", "street")]["n"] == 8
    assert rows[("oracle target", "pooled")]["n"] == rows[("target", "pooled")]["n"]
    # the printed table and results.csv show results only; the oracle is one line titled ORACLE
    table = proc.stdout[proc.stdout.index("=> VideoVanilla on"):proc.stdout.index("Results written")]
    assert "oracle holdout" not in table and "oracle target" not in table
    line = next(row for row in table.splitlines() if "ORACLE" in row)
    assert line.startswith("=> ORACLE (target-domain selection, not a DG result")
    assert f"{rows[('oracle holdout', 'pooled')]['accuracy']:.2f}% (n 24)" in line
    with open(out / "results.csv") as f:
        assert {row["split"] for row in csv.DictReader(f)} == {"source val", "target"}
    # the last epoch, not the source-val-selected one: evaluate the saved last-epoch checkpoint on the test
    last = tmp_path / "eval_last"
    run_train(["--root", data_root, "--trainer", "VideoVanilla", "--config-file",
               "configs/trainers/VideoVanilla/smallcnn_cpu.yaml", *SYNTHETIC_ARGS, "--output-dir", str(last),
               "--eval-only", "--model-dir", str(out), "--load-epoch", "2", "DATASET.ORACLE_HOLDOUT", "0.34",
               *TINY_SYNTHETIC])
    evaluated = read_results(str(last))
    assert evaluated[("target", "pooled")]["accuracy"] == rows[("oracle target", "pooled")]["accuracy"]
    assert ("oracle holdout", "pooled") not in evaluated  # --eval-only scores no oracle: no last epoch to speak of
