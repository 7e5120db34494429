"""Inputs that used to pass silently or fail late (issue 24), each pinned by the test named in the bad-input table
(docs: reliability). The benchmark here is hand-made: classes.txt and one list file per domain, with real tiny
videos, read by an existing benchmark class (SSv2DG: domains doing, pretending) or the generic VideoListDG."""
import json
import os
import os.path as osp
import re

import av
import numpy as np
import pytest
from PIL import Image

import train
from defaults import extend_cfg
from framework import build_dataset, get_cfg_default
from framework.builtin.utils import CheckpointError, load_checkpoint
from tests.helpers import train_in_process
from tests.test_benchmarks import write_video
from video.datum import VideoDatum
from video.loader import check_files
from video.readers import VideoReadError, count_frames, read_frames

CLASSES = ["wave", "clap", "jump", "sit"]


def write_benchmark(folder, lists: dict, classes=CLASSES) -> None:
    """classes.txt and <domain>.txt ({domain: [(relpath, label), ...]}), each clip a real 8-frame video."""
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, "classes.txt"), "w") as f:
        f.write("".join(f"{name}\n" for name in classes))
    for domain, rows in lists.items():
        for relpath, _ in rows:
            if not osp.exists(osp.join(folder, relpath)):
                write_video(osp.join(folder, relpath))
        with open(osp.join(folder, f"{domain}.txt"), "w") as f:
            f.write("".join(f"{relpath} 8 {label}\n" for relpath, label in rows))


def clips(domain: str, labels, per_class: int = 3):
    return [(f"videos/{domain}/c{label}_{k}.avi", label) for label in labels for k in range(per_class)]


def ssv2_cfg(root, **dataset):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "SSv2DG"
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.SOURCE_DOMAINS = ["doing"]
    cfg.DATASET.TARGET_DOMAINS = ["pretending"]
    for key, value in dataset.items():
        cfg.DATASET[key] = value
    return cfg


@pytest.fixture
def bench(tmp_path):
    """DATASET.ROOT with ssv2_dg/: 3 classes x 3 clips per domain."""
    write_benchmark(tmp_path / "ssv2_dg", {"doing": clips("doing", [0, 1, 2]),
                                           "pretending": clips("pretending", [0, 1, 2])})
    return tmp_path


# ---------------------------------------------------------------------------------------------- 2: cut-off mp4
def write_noise_mp4(path: str, n: int = 60) -> str:
    """H.264 with its index (moov) at the front and incompressible frames, so a cut removes frame data."""
    rng = np.random.default_rng(0)
    with av.open(path, "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_pyav_refuses_a_cut_off_mp4_like_decord_and_check_files_lists_it(tmp_path, capsys):
    full = write_noise_mp4(str(tmp_path / "full.mp4"))
    data = open(full, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])  # the second half of the file is missing; the header says 60 frames
    assert count_frames(VideoDatum(full), "pyav") == 60
    for read in (lambda: count_frames(VideoDatum(str(cut)), "pyav"), lambda: read_frames(VideoDatum(str(cut)), [0], "pyav")):
        with pytest.raises(VideoReadError, match=r"cut off.*header .*60 frames") as info:
            read()
        assert str(cut) in str(info.value)
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.VIDEO_BACKEND = "pyav"
    cfg.INPUT.NUM_SEGMENTS = 3
    with pytest.raises(RuntimeError, match="found 1 unreadable clips") as info:
        check_files({"test": [VideoDatum(full), VideoDatum(str(cut))]}, cfg)
    assert f"[test] {cut}" in str(info.value)


# ---------------------------------------------------------------------------------------------- 3: stale splits
def test_a_saved_split_is_remade_with_a_log_line_when_the_list_changed(bench, capsys):
    first = build_dataset(ssv2_cfg(bench))
    split_file = bench / "ssv2_dg" / "splits" / "doing_val0.3_seed1.json"
    saved = json.loads(split_file.read_text())
    assert saved["made_from"]["clips"] == 9
    capsys.readouterr()
    write_benchmark(bench / "ssv2_dg", {"doing": clips("doing", [0, 1, 2], per_class=10)})  # the list grew
    grown = build_dataset(ssv2_cfg(bench))
    out = capsys.readouterr().out
    assert re.search(r"doing.txt changed since .*doing_val0.3_seed1.json was made \(9 clips then, 30 now\)", out)
    assert len(grown.val) == 9 and len(grown.train_x) == 21  # 30% of every class, not all new clips in train
    assert json.loads(split_file.read_text())["made_from"]["clips"] == 30
    assert len(first.val) == 3
    again = build_dataset(ssv2_cfg(bench))  # unchanged now: read back, not remade
    assert [i.impath for i in again.val] == [i.impath for i in grown.val]
    assert "changed since" not in capsys.readouterr().out


def test_a_split_from_another_source_is_refused_with_the_fix_when_the_list_changed(bench):
    build_dataset(ssv2_cfg(bench))
    split_file = bench / "ssv2_dg" / "splits" / "doing_val0.3_seed1.json"
    saved = json.loads(split_file.read_text())
    split_file.write_text(json.dumps(dict(saved, source="official lists in /somewhere")))
    write_benchmark(bench / "ssv2_dg", {"doing": clips("doing", [0, 1, 2], per_class=4)})
    with pytest.raises(ValueError, match=r"official lists in /somewhere.*9 clips.*12.*preparation script") as info:
        build_dataset(ssv2_cfg(bench))
    assert str(split_file) in str(info.value)


def test_an_empty_source_list_is_refused_naming_the_file_and_no_split_is_saved(bench):
    (bench / "ssv2_dg" / "doing.txt").write_text("# nothing yet\n")
    with pytest.raises(ValueError, match=r"doing.txt.* no clips") as info:
        build_dataset(ssv2_cfg(bench))
    assert str(bench / "ssv2_dg" / "doing.txt") in str(info.value)
    assert not (bench / "ssv2_dg" / "splits").exists()


def test_a_source_without_validation_clips_is_refused_before_training(bench):
    write_benchmark(bench / "ssv2_dg", {"doing": clips("doing", [0, 1, 2], per_class=1)})  # round(0.3) = 0
    with pytest.raises(ValueError, match=r"no source validation clip.*doing.*DATASET.VAL_RATIO"):
        build_dataset(ssv2_cfg(bench))
    assert not (bench / "ssv2_dg" / "splits").exists()


# ---------------------------------------------------------------------------------------------- 4: empty target
def test_an_empty_target_list_is_refused_naming_the_file(bench):
    (bench / "ssv2_dg" / "pretending.txt").write_text("")
    with pytest.raises(ValueError, match="pretending.txt.* no clips") as info:
        build_dataset(ssv2_cfg(bench))
    assert str(bench / "ssv2_dg" / "pretending.txt") in str(info.value)


# ---------------------------------------------------------------------------------------------- 5: class count
def test_the_class_count_comes_from_classes_txt_and_unseen_target_classes_are_reported(tmp_path, capsys):
    write_benchmark(tmp_path / "ssv2_dg", {"doing": clips("doing", [0, 1, 2]),
                                           "pretending": clips("pretending", [0, 1, 2, 3])})
    dataset = build_dataset(ssv2_cfg(tmp_path))
    assert dataset.num_classes == 4 and dataset.classnames == CLASSES
    assert dataset.lab2cname == dict(enumerate(CLASSES))
    out = capsys.readouterr().out
    assert re.search(r"WARNING: class 3 \(sit\) has 3 target clips but no source training clip", out)


# ---------------------------------------------------------------------------------------------- 6: frame sizes
def test_check_files_finds_a_frame_folder_whose_frames_differ_in_size(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(12):  # frame 2 is 40x40, the others 32x32; evaluation reads frames 3, 7 and 11 only
        size = 40 if k == 1 else 32
        Image.fromarray(np.full((size, size, 3), 10 * k, np.uint8)).save(folder / f"img_{k + 1:05d}.jpg")
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.INPUT.NUM_SEGMENTS = 3
    with pytest.raises(RuntimeError, match=r"frames differ in size.*img_00002.jpg is 40x40.*32x32"):
        check_files({"train": [VideoDatum(str(folder))]}, cfg)


# ---------------------------------------------------------------------------------------------- 7: duplicates
def test_duplicate_list_lines_are_refused_naming_the_clip_and_lines(bench):
    with open(bench / "ssv2_dg" / "pretending.txt", "a") as f:
        f.write("videos/pretending/c1_0.avi 8 1\n")
    with pytest.raises(ValueError, match=r"pretending.txt.*videos/pretending/c1_0.avi.*lines 4 and 10"):
        build_dataset(ssv2_cfg(bench))


# ---------------------------------------------------------------------------------------------- 8: smaller cases
def run_train_py(args):
    """train.main in this process; returns the SystemExit message (an input refused before anything is written)."""
    with pytest.raises(SystemExit) as info:
        train_in_process(train.build_parser().parse_args(args))
    return str(info.value)


def synthetic_args(root, out):
    return ["--root", str(root), "--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--trainer",
            "VideoVanilla", "--config-file", "configs/trainers/VideoVanilla/smallcnn_cpu.yaml",
            "--source-domains", "studio", "--target-domains", "street", "--output-dir", str(out)]


@pytest.mark.parametrize("opts,message", [
    (["DATASET.VAL_RATIO", "1.5"], r"DATASET.VAL_RATIO is 1.5.*between 0 and 1"),
    (["OPTIM.MAX_EPOCH", "0"], r"OPTIM.MAX_EPOCH is 0.*at least 1"),
    (["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], r"DATALOADER.TRAIN_X.BATCH_SIZE is 0.*at least 1"),
    (["DATALOADER.TEST.BATCH_SIZE", "0"], r"DATALOADER.TEST.BATCH_SIZE is 0.*at least 1"),
])
def test_settings_that_cannot_train_are_refused_before_anything_is_written(tmp_path, opts, message):
    out = tmp_path / "run"
    assert re.search(message, run_train_py([*synthetic_args(tmp_path / "data", out), *opts]))
    assert not out.exists() and not (tmp_path / "data").exists()


def test_eval_only_on_a_folder_without_checkpoints_writes_nothing(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    for folder in (empty, tmp_path / "mistyped"):
        message = run_train_py(["--eval-only", "--model-dir", str(folder), *synthetic_args(tmp_path / "d", "")[:-2]])
        assert "no checkpoint" in message and str(folder) in message and "--model-dir" in message
        assert not (folder / "eval").exists()


def test_key_value_pairs_right_after_a_domain_list_are_config_pairs(tmp_path):
    args = train.build_parser().parse_args([*synthetic_args(tmp_path, tmp_path / "o")[:-4], "--output-dir",
                                            str(tmp_path / "o"), "--target-domains", "street", "sketch",
                                            "OPTIM.MAX_EPOCH", "2", "DATASET.SPLIT_SEED", "4"])
    cfg = train.setup_cfg(args)
    assert list(cfg.DATASET.TARGET_DOMAINS) == ["street", "sketch"]
    assert cfg.OPTIM.MAX_EPOCH == 2 and cfg.DATASET.SPLIT_SEED == 4


def test_a_text_file_named_like_a_checkpoint_is_called_what_it_is(tmp_path):
    fake = tmp_path / "model-best.pth.tar"
    fake.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint.*text"):
        load_checkpoint(str(fake))


def write_av1(path: str) -> str:
    with av.open(path, "w") as container:
        stream = container.add_stream("libsvtav1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for k in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * k, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_codec_decord_cannot_open_suggests_pyav(tmp_path):
    path = write_av1(str(tmp_path / "av1.mp4"))
    with pytest.raises(VideoReadError, match=r"av1.*DATASET.VIDEO_BACKEND pyav"):
        count_frames(VideoDatum(path), "decord")
    assert count_frames(VideoDatum(path), "pyav") == 5  # PyAV decodes it



# ---------------------------------------------------------------------------------------------- the table
def test_the_bad_input_table_names_tests_that_exist():
    """docs/reliability.md's bad-input table: every `file.py::test` it cites is a test of that file (a bare
    `::test` belongs to the file named before it), and no docs page shows the grid script's old form."""
    from tests.helpers import REPO
    with open(osp.join(REPO, "docs", "reliability.md"), encoding="utf-8") as f:
        table = f.read().split("## Bad input", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 60
    cited = 0
    for row in rows:
        current = None
        for file, name in re.findall(r"`(test_\w+\.py)?::(test_\w+)`", row):
            current = file or current
            with open(osp.join(REPO, "tests", current), encoding="utf-8") as f:
                assert re.search(rf"^def {name}\(", f.read(), flags=re.M), f"{current}::{name}"
            cited += 1
    assert cited >= 80
    for page in os.listdir(osp.join(REPO, "docs")):
        if page.endswith(".md"):
            with open(osp.join(REPO, "docs", page), encoding="utf-8") as f:
                assert "paper_tasks.sh data " not in f.read().replace("`bash scripts/paper_tasks.sh data ucf_hmdb`", ""), page
