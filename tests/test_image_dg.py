"""Image DG sets as one-frame clips (issue 26, item 3) on miniature releases in Dassl's layouts: PACS (images/ and
the kfold split lists), Digits-DG and Office-Home-DG (<domain>/{train,val}/<class>/). Checks the domains,
classes, the release's own train/val split, M = 1 clips, and one training epoch per set through train.py."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import train
from datasets import image_dg
from datasets.base import DatasetNotFoundError
from defaults import extend_cfg
from framework import TRAINER_REGISTRY, build_dataset, get_cfg_default
from tests.helpers import train_in_process
from video.readers import read_sampled_frames
from video.sampling import sample_segment_indices

PACS_CLASSES = image_dg.PACSClips.classes_in_order


def write_image(path: str, level: int, size: int = 20) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), level % 256, np.uint8)).save(path)


def mini_pacs(root, per_split=(2, 1)) -> str:
    """root/pacs/images/<domain>/<class>/<name>.jpg and splits/<domain>_{train,crossval}_kfold.txt (labels from 1),
    plus Dassl's left-out sketch image listed but to be skipped."""
    base = osp.join(root, "pacs")
    for d, domain in enumerate(image_dg.PACSClips.domains):
        for split, n in zip(("train", "crossval"), per_split):
            lines = []
            for label, name in enumerate(PACS_CLASSES):
                for k in range(n):
                    rel = f"{domain}/{name}/{split}_{k}.jpg"
                    write_image(osp.join(base, "images", rel), 30 * label + d)
                    lines.append(f"{rel} {label + 1}\n")
            if domain == "sketch" and split == "train":
                rel = image_dg.PACSClips.left_out[0]
                write_image(osp.join(base, "images", rel), 0)
                lines.append(f"{rel} 1\n")
            os.makedirs(osp.join(base, "splits"), exist_ok=True)
            with open(osp.join(base, "splits", f"{domain}_{split}_kfold.txt"), "w") as f:
                f.writelines(lines)
    return base


def mini_folders(root, cls, classes, per_split=(2, 1), size: int = 20) -> str:
    """root/<dataset_dir>/<domain>/{train,val}/<class>/<k>.jpg"""
    base = osp.join(root, cls.dataset_dir)
    for d, domain in enumerate(cls.domains):
        for split, n in zip(("train", "val"), per_split):
            for label, name in enumerate(classes):
                for k in range(n):
                    write_image(osp.join(base, domain, split, name, f"{k}.jpg"), 40 * label + d, size)
    return base


DIGITS = ["0", "1", "2"]
OFFICE = ["Alarm_Clock", "Backpack", "Batteries"]


def make_cfg(name, root, source, target):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME, cfg.DATASET.ROOT = name, str(root)
    cfg.DATASET.SOURCE_DOMAINS, cfg.DATASET.TARGET_DOMAINS = list(source), list(target)
    return cfg


def test_pacs_reads_the_kfold_lists_as_one_frame_clips(tmp_path, capsys):
    mini_pacs(tmp_path)
    dataset = build_dataset(make_cfg("PACSClips", tmp_path, ["cartoon", "photo", "sketch"], ["art_painting"]))
    assert dataset.classnames == PACS_CLASSES and dataset.num_classes == 7
    assert len(dataset.train_x) == 3 * 7 * 2 and len(dataset.val) == 3 * 7  # the left-out image is not read
    assert all("crossval" in osp.basename(i.impath) for i in dataset.val)
    assert len(dataset.test) == 7 * 3 and {i.domain for i in dataset.test} == {0}  # train + crossval of the target
    assert {i.domain for i in dataset.train_x} == {0, 1, 2}
    assert "DATASET.VAL_RATIO does not apply" in capsys.readouterr().out
    item = dataset.test[0]
    frames = read_sampled_frames(item, lambda n: sample_segment_indices(n, 1, train=False))
    assert frames.shape == (1, 20, 20, 3) and item.is_image
    assert not osp.exists(tmp_path / "pacs" / "splits" / "cartoon_val0.3_seed1.json")  # no split is made here


def test_pacs_label_order_is_checked_against_the_class_folders(tmp_path):
    base = mini_pacs(tmp_path)
    split = osp.join(base, "splits", "photo_train_kfold.txt")
    with open(split, "a") as f:
        f.write("photo/dog/train_0.jpg 2\n")  # dog is label 1
    with pytest.raises(ValueError, match=r"photo_train_kfold.txt, line \d+: .*label 2, which is \"elephant\""):
        build_dataset(make_cfg("PACSClips", tmp_path, ["photo"], ["sketch"]))


@pytest.mark.parametrize("name,classes", [("DigitsDGClips", DIGITS), ("OfficeHomeDGClips", OFFICE)])
def test_folder_layouts_label_by_sorted_class_folders(tmp_path, name, classes):
    cls = getattr(image_dg, name)
    base = mini_folders(tmp_path, cls, classes)
    dataset = build_dataset(make_cfg(name, tmp_path, cls.domains[:3], cls.domains[3:]))
    assert dataset.classnames == sorted(classes)
    assert len(dataset.train_x) == 3 * 3 * 2 and len(dataset.val) == 3 * 3 and len(dataset.test) == 3 * 3
    assert all(f"{os.sep}val{os.sep}" in i.impath for i in dataset.val)
    os.rename(osp.join(base, cls.domains[1], "val", sorted(classes)[1]), osp.join(tmp_path, "moved"))
    with pytest.raises(DatasetNotFoundError, match=rf"{cls.domains[1]}/val lacks \['{sorted(classes)[1]}'\]"):
        build_dataset(make_cfg(name, tmp_path, cls.domains[:3], cls.domains[3:]))


def test_a_missing_set_names_the_download_command(tmp_path):
    for cls in (image_dg.PACSClips, image_dg.DigitsDGClips, image_dg.OfficeHomeDGClips):
        with pytest.raises(DatasetNotFoundError, match=f"tools/download.py {cls.dataset_dir} --root"):
            build_dataset(make_cfg(cls.__name__, tmp_path, cls.domains[:1], cls.domains[1:]))


def one_epoch(root, out, config: str, source, target, trainer: str = "VideoVanilla", extra=()) -> dict:
    args = train.build_parser().parse_args([
        "--root", str(root), "--dataset-config-file", f"configs/datasets/{config}.yaml", "--trainer", trainer,
        "--config-file", f"configs/trainers/{trainer}/smallcnn_cpu.yaml", "--source-domains", *source,
        "--target-domains", *target, "--output-dir", str(out), "--seed", "1",
        "INPUT.SIZE", "(16, 16)", "INPUT.TEST_SCALE_SIZE", "16", "MODEL.BACKBONE.FEATURE_DIM", "16",
        "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "6", "TEST.FIGURES", "False", *extra])
    train_in_process(args)
    with open(osp.join(out, "results.json")) as f:
        return {(row["split"], row["domain"]): row["n"] for row in json.load(f)}


def test_one_epoch_on_each_miniature(tmp_path):
    mini_pacs(tmp_path)
    mini_folders(tmp_path, image_dg.DigitsDGClips, DIGITS)
    mini_folders(tmp_path, image_dg.OfficeHomeDGClips, OFFICE)
    rows = one_epoch(tmp_path, tmp_path / "pacs_run", "pacs", ["cartoon", "photo", "sketch"], ["art_painting"])
    assert rows[("target", "art_painting")] == 21 and rows[("source val", "pooled")] == 21
    rows = one_epoch(tmp_path, tmp_path / "digits_run", "digits_dg", ["mnist", "mnist_m", "svhn"], ["syn"])
    assert rows[("target", "syn")] == 9
    rows = one_epoch(tmp_path, tmp_path / "office_run", "office_home_dg", ["art", "clipart", "product"],
                     ["real_world"])
    assert rows[("target", "real_world")] == 9


def test_a_multi_source_dg_trainer_runs_on_one_frame_clips_unchanged(tmp_path):
    """A method that needs several source domains (it learns from their differences), as it runs on video."""
    defaults = train.default_cfg()
    multi = sorted(name for name in TRAINER_REGISTRY.registered_names()
                   if hasattr(TRAINER_REGISTRY.get(name), "requirements")
                   and TRAINER_REGISTRY.get(name).requirements(defaults).source_domains >= 2
                   and osp.isfile(f"configs/trainers/{name}/smallcnn_cpu.yaml"))
    assert multi, "no multi-source DG trainer with a CPU config"
    mini_pacs(tmp_path)
    rows = one_epoch(tmp_path, tmp_path / "run", "pacs", ["cartoon", "photo", "sketch"], ["art_painting"],
                     trainer=multi[0])
    assert rows[("target", "art_painting")] == 21
