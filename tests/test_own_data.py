"""VideoListDG: a DG benchmark from your own files (issue 24, item 1): any domain names, classes.txt, one list
per domain or train/val/test lists, videos or frame folders, group-aware splits when the lists say what belongs
together; and the datasets docs' own-data example, built and trained for one epoch, then evaluated."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

import train
from datasets.base import DatasetNotFoundError
from defaults import extend_cfg
from framework import build_dataset, get_cfg_default
from tests.helpers import REPO, train_in_process
from tests.test_benchmarks import write_video

CLASSES = ["wave", "clap", "jump"]


def cfg_for(root, source, target, **keys):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "VideoListDG"
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.SOURCE_DOMAINS, cfg.DATASET.TARGET_DOMAINS = list(source), list(target)
    for key, value in keys.items():
        node, name = key.split("__")
        cfg.DATASET[node][name] = value
    return cfg


def write_frames(folder, n: int = 6) -> None:
    os.makedirs(folder, exist_ok=True)
    for k in range(n):
        Image.fromarray(np.full((32, 32, 3), 30 * k, np.uint8)).save(osp.join(folder, f"img_{k + 1:05d}.jpg"))


def own_videos(root, domains=("lab", "street"), people=4, takes=2) -> None:
    """root/classes.txt, root/<domain>.txt with `path label` lines; person pNN filmed `takes` times per class."""
    os.makedirs(root, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    for domain in domains:
        lines = []
        for label, name in enumerate(CLASSES):
            for p in range(people):
                for t in range(takes):
                    rel = f"{domain}/{name}/p{p:02d}_take{t}.mp4"
                    write_video(str(root / rel))
                    lines.append(f"{rel} {label}\n")
        (root / f"{domain}.txt").write_text("".join(lines))


def test_domains_come_from_the_list_files_and_a_pattern_makes_the_split_group_aware(tmp_path, capsys):
    own_videos(tmp_path)
    with pytest.raises(ValueError, match=r"Unknown target domain \"office\".*\['lab', 'street'\]"):
        build_dataset(cfg_for(tmp_path, ["lab"], ["office"]))
    dataset = build_dataset(cfg_for(tmp_path, ["lab"], ["street"], VIDEO_LIST__GROUP_PATTERN=r"/(p\d+)_"))
    assert dataset.classnames == CLASSES and len(dataset.test) == 24
    people = lambda items: {osp.basename(i.impath)[:3] for i in items}  # noqa: E731
    assert dataset.val and not people(dataset.train_x) & people(dataset.val)  # no person on both sides
    saved = json.loads((tmp_path / "splits" / "lab_val0.3_seed1.json").read_text())
    assert saved["grouping"] == r"DATASET.VIDEO_LIST.GROUP_PATTERN '/(p\\d+)_'"
    assert "clip by clip" not in capsys.readouterr().out


def test_without_groups_the_split_is_by_clip_with_a_stated_warning(tmp_path, capsys):
    own_videos(tmp_path, people=2)
    dataset = build_dataset(cfg_for(tmp_path, ["lab"], ["street"]))
    assert len(dataset.val) == 3 and len(dataset.train_x) == 9
    out = capsys.readouterr().out
    assert "WARNING: lab.txt is split into train/val clip by clip" in out and "GROUP_PATTERN" in out


def test_train_val_test_lists_of_frame_folders_with_a_group_column(tmp_path, capsys):
    data = tmp_path / "mine"
    data.mkdir()
    (data / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    rows = {}
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for domain in ("cam_a", "cam_b"):
            lines = []
            for label in range(3):
                for k in range(n):
                    rel = f"frames/{domain}/{split}/c{label}_{k}"
                    write_frames(str(data / rel))
                    lines.append(f"{rel} 6 {label} rec{k % 2}\n")
            (data / f"{domain}_{split}.txt").write_text("".join(lines))
            rows[domain, split] = lines
    dataset = build_dataset(cfg_for(tmp_path, ["cam_a"], ["cam_b"], VIDEO_LIST__FOLDER="mine"))
    assert len(dataset.train_x) == 12 and len(dataset.val) == 6 and len(dataset.test) == 9
    assert all(item.is_frame_folder for item in dataset.train_x + dataset.test)
    out = capsys.readouterr().out
    assert "cam_a_train.txt and cam_a_val.txt (6 of 18 clips in val; DATASET.VAL_RATIO does not apply)" in out
    assert "not group-aware" in out  # rec0 / rec1 name groups on both sides
    assert not (data / "splits").exists()  # the given split is used, nothing is saved
    with open(data / "cam_a_val.txt", "a") as f:
        f.write(rows["cam_a", "train"][0])
    with pytest.raises(ValueError, match="in both its train and val lists"):
        build_dataset(cfg_for(tmp_path, ["cam_a"], ["cam_b"], VIDEO_LIST__FOLDER="mine"))


def test_a_missing_folder_or_classes_file_says_what_to_write(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="VIDEO_LIST.FOLDER.*classes.txt") as info:
        build_dataset(cfg_for(tmp_path, ["a"], ["b"], VIDEO_LIST__FOLDER="nowhere"))
    assert "UCF101" not in str(info.value)
    (tmp_path / "a.txt").write_text("x.mp4 0\n")
    (tmp_path / "b.txt").write_text("y.mp4 0\n")
    with pytest.raises(DatasetNotFoundError, match="has no classes.txt"):
        build_dataset(cfg_for(tmp_path, ["a"], ["b"]))
    (tmp_path / "classes.txt").write_text("one\n")
    (tmp_path / "a.txt").write_text("x.mp4 0\ny.mp4 3 0 g 1\n")
    with pytest.raises(ValueError, match=r"a.txt, line 2: .*expected '<path> <label>'"):
        build_dataset(cfg_for(tmp_path, ["a"], ["b"]))
    with pytest.raises(ValueError, match=r"GROUP_PATTERN '\(p\[0-9\]' is not a regular expression"):
        build_dataset(cfg_for(tmp_path, ["a"], ["b"], VIDEO_LIST__GROUP_PATTERN="(p[0-9]"))


# ---------------------------------------------------------------------------------------------- the docs' example
def docs_example() -> dict:
    """The own-data example of docs/datasets.md ("Your own videos"): its commands as printed there, and the
    layout its text describes (the first and last list lines are checked against the printed ones)."""
    with open(osp.join(REPO, "docs", "datasets.md"), encoding="utf-8") as f:
        section = f.read().split("## Your own videos", 1)[1].split("\n## ", 1)[0]
    layout = re.search(r"```\n(my_videos/.*?)```", section, flags=re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1).strip().splitlines()
    example = {
        "classes": "".join(f"{c}\n" for c in re.search(r"classes.txt +([\w, ]+) \(", layout).group(1).split(", ")),
        "lab.txt": [f"lab/{c}/p{p:02d}_take{t}.mp4 {label}" for label, c in enumerate(CLASSES) for p in range(3)
                    for t in range(2)],
        "street.txt": [f"street/{c}/p{p:02d}.mp4 {label}" for label, c in enumerate(CLASSES) for p in range(3, 5)],
        "train": next(c for c in commands if "--eval-only" not in c),
        "evaluate": next(c for c in commands if "--eval-only" in c),
    }
    for name in ("lab.txt", "street.txt"):
        assert f"{name}  " in layout and example[name][0] in layout, name
    assert example["lab.txt"][-1] in layout and example["classes"] == "".join(f"{c}\n" for c in CLASSES)
    return example


def command_args(command: str, replace: dict) -> list:
    import shlex
    args = shlex.split(command)[2:]  # after `python train.py`
    return [replace.get(a, a) for a in args]


def test_the_docs_own_data_example_trains_one_epoch_and_evaluates(tmp_path, monkeypatch):
    example = docs_example()
    data = tmp_path / "my_videos"
    data.mkdir()
    (data / "classes.txt").write_text(example["classes"])
    for name in ("lab.txt", "street.txt"):
        for line in example[name]:
            write_video(str(data / line.split()[0]))
        (data / name).write_text("\n".join(example[name]) + "\n")
    out = tmp_path / "run"
    replace = {"my_videos": str(data), "output/my_videos/lab/VideoVanilla": str(out)}
    small = ["INPUT.SIZE", "(32, 32)", "INPUT.TEST_SCALE_SIZE", "32", "INPUT.NUM_SEGMENTS", "3",
             "MODEL.BACKBONE.FEATURE_DIM", "16", "TEST.FIGURES", "False", "DATALOADER.TRAIN_X.BATCH_SIZE", "6"]
    train_in_process(train.build_parser().parse_args(command_args(example["train"], replace) + small))
    rows = {(r["split"], r["domain"]): r for r in json.loads((out / "results.json").read_text())}
    assert rows["target", "street"]["n"] == 6 and rows["source val", "lab"]["n"] > 0
    assert re.search(r"grouped by DATASET.VIDEO_LIST.GROUP_PATTERN", (out / "log.txt").read_text())
    train_in_process(train.build_parser().parse_args(command_args(example["evaluate"], replace)))
    evaluated = json.loads((out / "eval" / "test-best" / "results.json").read_text())
    assert [r["n"] for r in evaluated] == [r["n"] for r in rows.values()]
