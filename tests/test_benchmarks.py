"""The four video DG benchmarks of the paper on miniature releases with the real naming schemes (STDN's two:
tests/test_stdn_benchmarks.py; the image DG sets: tests/test_image_dg.py).

Each miniature is made of real (tiny) video files. The tests run each preparation script on it, check the
domains, labels and splits the dataset class builds, that a missing file is reported (not a traceback), that
PKU-MMD trimming cuts the annotated frames, and one training run per benchmark through train.py.
"""
import json
import os
import os.path as osp
import shutil

import av
import decord
import numpy as np
import pytest

import train
from datasets import base, epic_kitchens_dg, jester_dg, ntu_rgbd, pku_mmd, something_something, ucf_hmdb
from datasets.base import DatasetNotFoundError
from datasets.list_dataset import clip_key
from defaults import extend_cfg
from framework import build_dataset, get_cfg_default
from tools import extract_frames, prepare_jester_dg, prepare_ntu, prepare_pku_mmd, prepare_ssv2, prepare_ucf_hmdb
from tests.helpers import train_in_process
from video.readers import read_frames

SIDE = 32  # decord 0.6.0 cannot decode some square sizes (16, 24, 48, 72); 32 works
CODECS = {".avi": "mpeg4", ".webm": "libvpx", ".mp4": "libx264"}
# The official APN code's UCF-HMDB list files, when this checkout sits beside the team's shared folder (or
# VIDEODG_REFERENCE_LISTS names them); the check that uses them is skipped elsewhere.
REFERENCE_LISTS = os.environ.get("VIDEODG_REFERENCE_LISTS", osp.join(osp.dirname(osp.dirname(osp.abspath(
    __file__))), "..", "shared", "reference", "videodg_lists"))


# ---------------------------------------------------------------------------------------------- tiny videos
def index_frame(index: int) -> np.ndarray:
    """A frame whose 8 vertical stripes spell `index` in binary (white = 1): survives lossy codecs."""
    bits = [(index >> b) & 1 for b in range(8)]
    row = np.repeat(np.array(bits, np.uint8) * 255, SIDE // 8)
    return np.tile(row[None, :, None], (SIDE, 1, 3))


def frame_index(frame: np.ndarray) -> int:
    centres = frame[:, SIDE // 16::SIDE // 8].mean(axis=(0, 2))  # the middle column of each stripe
    return int(sum(1 << b for b, level in enumerate(centres) if level > 128))


def write_video(path: str, num_frames: int = 8) -> str:
    """A video whose frame k shows index k; codec chosen by the extension, as in the real releases."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with av.open(path, "w") as container:
        stream = container.add_stream(CODECS[osp.splitext(path)[1]], rate=10)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for k in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(index_frame(k), format="rgb24")))
        container.mux(stream.encode())
    return path


def decoded_indices(path: str) -> list:
    reader = decord.VideoReader(path)
    return [frame_index(f) for f in reader.get_batch(list(range(len(reader)))).asnumpy()]


# ---------------------------------------------------------------------------------------------- configs and runs
def make_cfg(name: str, root, source, target, **dataset):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = name
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.SOURCE_DOMAINS = list(source)
    cfg.DATASET.TARGET_DOMAINS = list(target)
    for key, value in dataset.items():
        cfg.DATASET[key] = value
    return cfg


def train_once(root, out, config: str, source, target, segments: int = 3) -> list:
    """One tiny VideoVanilla epoch through train.py; the rows of results.json."""
    args = train.build_parser().parse_args([
        "--root", str(root), "--trainer", "VideoVanilla", "--backbone", "frame_smallcnn", "--head", "tsn",
        "--dataset-config-file", f"configs/datasets/{config}.yaml", "--source-domains", *source,
        "--target-domains", *target, "--output-dir", str(out), "--seed", "1",
        "MODEL.BACKBONE.PRETRAINED", "False", "MODEL.BACKBONE.FEATURE_DIM", "16", "INPUT.SIZE", "(32, 32)",
        "INPUT.TEST_SCALE_SIZE", "32", "INPUT.NUM_SEGMENTS", str(segments), "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "4",
        "TEST.FINAL_MODEL", "best_val", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.01", "USE_CUDA", "False"])
    train_in_process(args)
    with open(osp.join(out, "results.json")) as f:
        return json.load(f)


def target_rows(rows: list) -> dict:
    return {row["domain"]: row["n"] for row in rows if row["split"] == "target"}


def assert_group_aware(dataset, domain: str, dataset_dir) -> None:
    """No group (recording) of the source domain has clips in both train and val, and val is not empty."""
    cls = type(dataset)

    def group(item):
        return cls.group_of(domain, clip_key(osp.relpath(item.impath, dataset_dir), item.frame_range))

    train, val = {group(i) for i in dataset.train_x}, {group(i) for i in dataset.val}
    assert val and not train & val, sorted(train & val)


def read_list(path: str) -> list:
    with open(path) as f:
        return [line.split() for line in f if line.strip() and not line.startswith("#")]


# ---------------------------------------------------------------------------------------------- UCF-HMDB
UCF_PER_FOLDER = 3
# UCF101 names: two clips of group g01 (cut from one long video) and one of g02 in every class folder.
UCF_NAMES = ("g01_c01", "g01_c02", "g02_c01")


def hmdb_names(folder: str) -> list:
    """HMDB51 names <source video>_<action>_<attributes>_<n>: two clips of one film of this class and one of a
    film that has a clip in every class (HMDB51 cuts several actions from one film)."""
    film = folder.title().replace("_", "")
    return [f"{film}Film_{folder}_f_cm_np1_le_med_0.avi", f"{film}Film_{folder}_u_nm_np1_fr_goo_1.avi",
            f"Shared_Movie_{folder}_f_cm_np1_ba_bad_0.avi"]


@pytest.fixture
def ucf_release(tmp_path, monkeypatch):
    """UCF-101/<Class>/v_<Class>_gXX_cYY.avi and hmdb51/<class>/<name>.avi, 3 videos per folder, plus folders
    of classes outside the benchmark; the expected counts shrink to match."""
    data = tmp_path / "data" / "ucf_hmdb"
    for folder in list(ucf_hmdb.UCF_FOLDERS) + ["ApplyEyeMakeup"]:
        for name in UCF_NAMES:
            write_video(str(data / "UCF-101" / folder / f"v_{folder}_{name}.avi"))
    for folder in list(ucf_hmdb.HMDB_FOLDERS) + ["brush_hair"]:
        for name in hmdb_names(folder):
            write_video(str(data / "hmdb51" / folder / name))
    for expected in (ucf_hmdb.EXPECTED_UCF, ucf_hmdb.EXPECTED_HMDB):
        for folder in expected:
            monkeypatch.setitem(expected, folder, UCF_PER_FOLDER)
    return tmp_path / "data"


def test_ucf_hmdb_release_is_parsed_into_domains_labels_and_a_saved_split(ucf_release):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release), "--count-frames"]) == 0
    rows = read_list(str(ucf_release / "ucf_hmdb" / "ucf.txt"))
    assert len(rows) == 15 * UCF_PER_FOLDER  # ApplyEyeMakeup is not one of the 12 classes
    assert {(r[0].split("/")[1], int(r[2])) for r in rows} == set(ucf_hmdb.UCF_FOLDERS.items())
    assert all(r[1] == "8" for r in rows)  # --count-frames: decord's count
    # the preparation writes each domain's default train/val split; training runs read it
    for domain in ("ucf", "hmdb"):
        assert (ucf_release / "ucf_hmdb" / "splits" / f"{domain}_val0.3_seed1.json").is_file()

    dataset = build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"]))
    assert dataset.classnames == ucf_hmdb.CLASSES
    labels = [item.label for item in dataset.train_x + dataset.val]
    assert [labels.count(k) for k in range(12)] == [6, 3, 3, 3, 3, 9, 3, 3, 3, 3, 3, 3]
    # 70/30 per class by group: round(0.3 * n) in val, so 1 of 3 (the g02 clip: taking g01 would put 2 in
    # val), 2 of 6 (climb) and 3 of 9 (punch), and no group on both sides.
    val = [item.label for item in dataset.val]
    assert [val.count(k) for k in range(12)] == [2, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1]
    assert_group_aware(dataset, "ucf", ucf_release / "ucf_hmdb")
    assert {item.domain for item in dataset.train_x + dataset.val} == {0}
    assert len(dataset.test) == 12 * UCF_PER_FOLDER and {item.domain for item in dataset.test} == {0}
    assert sorted({item.classname for item in dataset.test}) == sorted(ucf_hmdb.CLASSES)
    split_file = ucf_release / "ucf_hmdb" / "splits" / "ucf_val0.3_seed1.json"
    saved = json.loads(split_file.read_text())["val"]
    assert sorted(saved) == sorted(clip_key(osp.relpath(i.impath, ucf_release / "ucf_hmdb")) for i in dataset.val)
    again = build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"]))
    assert [i.impath for i in again.val] == [i.impath for i in dataset.val]


def test_preparing_other_videos_remakes_the_default_split_and_names_the_other_stale_ones(ucf_release, capsys):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"], VAL_RATIO=0.2))  # saves another ucf split
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release), "--count-frames"]) == 0  # same videos
    out = capsys.readouterr().out
    assert "NOTE" not in out and "replacing" not in out
    os.remove(ucf_release / "ucf_hmdb" / "UCF-101" / "Fencing" / "v_Fencing_g01_c01.avi")
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release), "--allow-mismatch"]) == 0
    out = capsys.readouterr().out
    assert "WARNING (--allow-mismatch)" in out and "UCF-101/Fencing: 2 of 3 videos (1 missing)" in out
    assert "replacing splits/ucf_val0.3_seed1.json: it was made for other clips" in out
    assert "NOTE: the lists of ['ucf'] changed; the saved splits ['ucf_val0.2_seed1.json']" in out
    build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"], VAL_RATIO=0.2))  # made again, with a line
    assert "ucf.txt changed since" in capsys.readouterr().out


def test_ucf_hmdb_missing_videos_are_reported_with_the_fix(ucf_release, capsys):
    os.remove(ucf_release / "ucf_hmdb" / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi")
    shutil.rmtree(ucf_release / "ucf_hmdb" / "UCF-101" / "Biking")
    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main, ["--root", str(ucf_release)]) == 1
    err = capsys.readouterr().err
    assert "UCF-101/Biking: missing (expected 3 videos)" in err
    assert "UCF-101/Archery: 2 of 3 videos (1 missing)" in err
    assert "41 of the 45 expected videos" in err and "unrar x UCF101.rar" in err and "Traceback" not in err
    assert not (ucf_release / "ucf_hmdb" / "ucf.txt").exists()

    shutil.rmtree(ucf_release / "ucf_hmdb" / "hmdb51")  # a whole release missing: path and download command
    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main, ["--root", str(ucf_release), "--allow-mismatch"]) == 1
    err = capsys.readouterr().err
    assert "hmdb51" in err and "hmdb51_org.rar" in err and "--hmdb51" in err


def official_line(domain: str, folder: str, name: str, label: int) -> str:
    prefix = {"ucf": "/data/UCF-HMDB/UCF", "hmdb": "/data/UCF-HMDB/HMDB"}[domain]
    return f"{prefix}/{folder}/{name} 8 {label}\n"


def test_official_lists_become_the_saved_split(ucf_release, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    ucf_videos = sorted((f, n) for f in ucf_hmdb.UCF_FOLDERS for n in os.listdir(ucf_release / "ucf_hmdb" /
                                                                                 "UCF-101" / f))
    val = {v for v in ucf_videos if v[1].endswith("c01.avi") and v[0] in ("Archery", "Punch", "Biking")}
    assert len(val) == 6  # g01_c01 and g02_c01 of 3 folders: g01 also has a clip in train
    for name, part in (("ucf_train.txt", [v for v in ucf_videos if v not in val]), ("ucf_val.txt", sorted(val))):
        (lists / name).write_text("".join(official_line("ucf", f, n, ucf_hmdb.UCF_FOLDERS[f]) for f, n in part))
    # The official HMDB lists name renamed frame folders (video_NNNN): they cannot match the raw release.
    (lists / "hmdb_train.txt").write_text(official_line("hmdb", "climb", "video_0060", 0))
    (lists / "hmdb_val.txt").write_text(official_line("hmdb", "climb", "video_0061", 0))

    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main,
                                     ["--root", str(ucf_release), "--official-lists", str(lists)]) == 1
    out, err = capsys.readouterr()
    assert "Official ucf split: 6 of 45 videos in val" in out and "DATASET.VAL_RATIO 0.13" in out
    assert "NOT group-aware: 3 of its 6 val clips come from 3 groups that also have clips in train" in out
    assert "climb/video_0060" in err and "video_NNNN" in err and "Traceback" not in err

    cfg = make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"], VAL_RATIO=0.13)
    dataset = build_dataset(cfg)  # the chosen official split is used as it is, with a warning
    assert "WARNING" in capsys.readouterr().out
    assert sorted((osp.basename(osp.dirname(i.impath)), osp.basename(i.impath)) for i in dataset.val) == sorted(val)
    assert len(dataset.train_x) == 39


@pytest.mark.skipif(not osp.isdir(REFERENCE_LISTS), reason="the official APN list files are not on this machine")
def test_class_mapping_and_counts_agree_with_the_official_apn_lists():
    """Every class folder of the official lists maps to the label the list gives; per-folder counts are ours."""
    counts = {}
    for name, size in (("ucf_train", 1603), ("ucf_val", 406), ("hmdb_train", 1434), ("hmdb_val", 366)):
        entries = prepare_ucf_hmdb.official_entries(osp.join(REFERENCE_LISTS, f"{name}.txt"))
        assert len(entries) == size
        folders = ucf_hmdb.UCF_FOLDERS if name.startswith("ucf") else ucf_hmdb.HMDB_FOLDERS
        for (folder, _), label in entries:
            assert folders[folder] == label, (name, folder)
            counts[folder] = counts.get(folder, 0) + 1
    assert {f: counts[f] for f in ucf_hmdb.EXPECTED_UCF} == ucf_hmdb.EXPECTED_UCF
    assert {f: counts[f] for f in ucf_hmdb.EXPECTED_HMDB} == ucf_hmdb.EXPECTED_HMDB
    assert sum(ucf_hmdb.EXPECTED_UCF.values()) == 2009 and sum(ucf_hmdb.EXPECTED_HMDB.values()) == 1800


def test_frame_folders_are_read_with_the_same_split(ucf_release):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    videos = build_dataset(make_cfg("UCFHMDB", ucf_release, ["hmdb"], ["ucf"]))
    cfg = make_cfg("UCFHMDB", ucf_release, ["hmdb"], ["ucf"], FRAME_TMPL="img_{:05d}.jpg")
    with pytest.raises(DatasetNotFoundError, match="tools/extract_frames.py"):
        build_dataset(cfg)
    assert extract_frames.main([str(ucf_release / "ucf_hmdb")]) == 0
    frames = build_dataset(cfg)
    assert all(item.is_frame_folder for item in frames.train_x + frames.val + frames.test)
    assert [osp.basename(i.impath) + ".avi" for i in frames.val] == [osp.basename(i.impath) for i in videos.val]
    item = frames.test[0]
    assert [frame_index(f) for f in read_frames(item, [0, 3, 7])] == [0, 3, 7]


# ---------------------------------------------------------------------------------------------- Something-Something
SSV2_USED = ["tearing", "closing", "opening"]  # categories with videos in the miniature
SSV2_COUNTS = {"doing": 3, "pretending": 2}  # videos per used category and domain


@pytest.fixture
def ssv2_release(tmp_path, monkeypatch):
    """labels/{labels,train,validation}.json + test-answers.csv and 20bn-something-something-v2/<id>.webm."""
    pairs = something_something.load_pairs()
    data = tmp_path / "data" / "ssv2_dg"
    labels = data / "labels"
    labels.mkdir(parents=True)
    templates = [c[d] for c in pairs["categories"] for d in ("doing", "pretending")] + ["Holding something"]
    (labels / "labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))
    entries, video_id = [], 1000
    for category in pairs["categories"]:
        for domain in ("doing", "pretending"):
            n = SSV2_COUNTS[domain] if category["name"] in SSV2_USED else 0
            entries += [(str(video_id + k), category[domain]) for k in range(n)]
            video_id += n
            category[f"{domain}_videos"] = n
    entries += [(str(video_id + k), "Holding something") for k in range(2)]  # not part of the benchmark
    bracketed = [(i, t.replace("something", "[something]")) for i, t in entries]  # as train.json writes them
    (labels / "train.json").write_text(json.dumps([{"id": i, "template": t} for i, t in bracketed[0::3]]))
    (labels / "validation.json").write_text(json.dumps([{"id": i, "template": t} for i, t in bracketed[1::3]]))
    (labels / "test-answers.csv").write_text("".join(f"{i};{t}\n" for i, t in entries[2::3]))
    for i, _ in entries:
        write_video(str(data / "20bn-something-something-v2" / f"{i}.webm"))
    monkeypatch.setattr(something_something, "load_pairs", lambda: pairs)
    return tmp_path / "data"


def test_ssv2_release_is_parsed_into_doing_and_pretending(ssv2_release):
    assert prepare_ssv2.main(["--root", str(ssv2_release)]) == 0
    dataset = build_dataset(make_cfg("SSv2DG", ssv2_release, ["doing"], ["pretend"]))
    names = something_something.category_names(something_something.load_pairs())
    assert len(dataset.train_x) + len(dataset.val) == 3 * SSV2_COUNTS["doing"]
    assert len(dataset.val) == 3  # round(0.3 * 3) = 1 per category
    assert sorted({i.classname for i in dataset.test}) == sorted(SSV2_USED)
    assert len(dataset.test) == 3 * SSV2_COUNTS["pretending"]
    assert all(names[i.label] == i.classname and i.impath.endswith(".webm") for i in dataset.test)
    assert {i.domain for i in dataset.test} == {0}


def test_ssv2_missing_videos_and_labels_are_reported(ssv2_release, capsys):
    os.remove(ssv2_release / "ssv2_dg" / "20bn-something-something-v2" / "1000.webm")  # a tearing (doing) video
    assert prepare_ssv2.run_main(prepare_ssv2.main, ["--root", str(ssv2_release)]) == 1
    err = capsys.readouterr().err
    assert "1 of the 15 labelled videos are missing" in err and "doing/tearing: 2 of 3 videos (1 missing)" in err
    assert "tar -xzf" in err and "Traceback" not in err

    os.remove(ssv2_release / "ssv2_dg" / "labels" / "test-answers.csv")
    assert prepare_ssv2.run_main(prepare_ssv2.main, ["--root", str(ssv2_release), "--allow-mismatch"]) == 1
    assert "--splits train validation" in capsys.readouterr().err


def test_ssv2_pairing_file_pairs_20_pretending_templates_with_real_ones():
    pairs = something_something.load_pairs()
    categories = pairs["categories"]
    assert len(categories) == 20 and len({c["name"] for c in categories}) == 20
    templates = [c[d] for c in categories for d in ("doing", "pretending")]
    assert len(set(templates)) == 40
    assert all(c["pretending"].startswith("Pretending to ") and not c["doing"].startswith("Pretending")
               for c in categories)
    assert not set(pairs["excluded_pretending_templates"]) & set(templates)
    for domain in ("doing", "pretending"):
        assert sum(c[f"{domain}_videos"] for c in categories) == pairs["release_totals"][domain]


# ---------------------------------------------------------------------------------------------- PKU-MMD
PKU_FRAMES = 40
# (PKU label, start, end): drink water, pickup, an interaction (giving), out of range, throw
PKU_LINES = [(8, 2, 9), (22, 12, 20), (12, 21, 30), (33, 30, 45), (41, 25, 33)]


@pytest.fixture
def pku_release(tmp_path, monkeypatch):
    """RGB_VIDEO/000N-V.avi (untrimmed, frame k shows k) and Train_Label_PKU_final/000N-V.txt for 2 sequences."""
    data = tmp_path / "data" / "pku_mmd"
    (data / "Train_Label_PKU_final").mkdir(parents=True)
    for sequence in ("0002", "0003"):
        for view in "LMR":
            write_video(str(data / "RGB_VIDEO" / f"{sequence}-{view}.avi"), PKU_FRAMES)
            text = "".join(f"{label},{start},{end},{1 + k % 2}\n" for k, (label, start, end) in enumerate(PKU_LINES))
            (data / "Train_Label_PKU_final" / f"{sequence}-{view}.txt").write_text(text)
    monkeypatch.setattr(pku_mmd, "EXPECTED_VIDEOS", 6)
    monkeypatch.setattr(pku_mmd, "EXPECTED_ANNOTATIONS", 6 * len(PKU_LINES))
    return tmp_path / "data"


def test_pku_trimming_cuts_the_annotated_frames_and_skips_lines_outside(pku_release, capsys):
    assert prepare_pku_mmd.main(["--root", str(pku_release)]) == 0
    out = capsys.readouterr().out
    assert "Annotation lines outside their video's frames (skipped): 6" in out
    assert "0002-L.txt line 4: frames 30-45 outside the video's frames 0-39" in out
    folder = pku_release / "pku_mmd"
    manifest = json.loads((folder / "prepared.json").read_text())
    assert manifest["skipped"]["outside_frames"] == 6 and manifest["skipped"]["other_categories"] == 6
    assert manifest["clips"] == {"left": 6, "middle": 6, "right": 6}
    daily = pku_mmd.CATEGORY_SETS["daily"]
    rows = read_list(str(folder / "left.txt"))
    assert sorted((r[0], int(r[1]), int(r[2])) for r in rows if "0002" in r[0]) == [
        ("clips/left/0002-L_001.mp4", 8, daily.index(8)), ("clips/left/0002-L_002.mp4", 9, daily.index(22)),
        ("clips/left/0002-L_005.mp4", 9, daily.index(41))]
    for line, (_, start, end) in ((1, PKU_LINES[0]), (2, PKU_LINES[1]), (5, PKU_LINES[4])):
        clip = folder / "clips" / "left" / f"0002-L_{line:03d}.mp4"
        assert decoded_indices(str(clip)) == list(range(start, end + 1))
    dataset = build_dataset(make_cfg("PKUMMD", pku_release, ["center"], ["left", "right"]))
    assert_group_aware(dataset, "middle", folder)
    assert {osp.basename(i.impath)[:4] for i in dataset.val} in ({"0002"}, {"0003"})  # one whole sequence
    assert len(dataset.prepared_classes) == 41 and dataset.prepared_classes[daily.index(8)] == "drink water"
    assert len(dataset.test) == 12 and {i.domain for i in dataset.test} == {0, 1}


def test_pku_ranges_mode_and_all_categories(pku_release):
    assert prepare_pku_mmd.main(["--root", str(pku_release), "--mode", "ranges", "--categories", "all"]) == 0
    rows = read_list(str(pku_release / "pku_mmd" / "right.txt"))
    assert ["RGB_VIDEO/0003-R.avi@21-31", "10", "11"] in rows  # the interaction is one of the 51 classes
    dataset = build_dataset(make_cfg("PKUMMD", pku_release, ["right"], ["left"]))
    assert len(dataset.prepared_classes) == 51
    item = next(i for i in dataset.test if i.frame_range == (2, 10) and i.impath.endswith("0002-L.avi"))
    assert [frame_index(f) for f in read_frames(item, [0, 3, 7])] == [2, 5, 9]


def test_pku_missing_annotation_file_is_reported(pku_release, capsys):
    os.remove(pku_release / "pku_mmd" / "Train_Label_PKU_final" / "0003-M.txt")
    assert prepare_pku_mmd.run_main(prepare_pku_mmd.main, ["--root", str(pku_release)]) == 1
    err = capsys.readouterr().err
    assert "RGB_VIDEO/0003-M.avi: no annotation file Train_Label_PKU_final/0003-M.txt" in err
    assert "25 annotated actions, 30 expected" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- NTU RGB+D
@pytest.fixture
def ntu_release(tmp_path, monkeypatch):
    """nturgb+d_rgb/S001CcccPpppR001Aaaa_rgb.avi: 3 cameras x 3 actions x 3 performers, plus an NTU-120 file."""
    folder = tmp_path / "data" / "ntu_rgbd" / "nturgb+d_rgb"
    for camera in (1, 2, 3):
        for action in (1, 2, 3):
            for performer in (1, 2, 3):
                write_video(str(folder / f"S001C{camera:03d}P{performer:03d}R001A{action:03d}_rgb.avi"))
    write_video(str(folder / "S018C001P008R001A061_rgb.avi"))
    monkeypatch.setattr(ntu_rgbd, "EXPECTED_VIDEOS", 27)
    monkeypatch.setattr(ntu_rgbd, "EXPECTED_PER_CAMERA", 9)
    monkeypatch.setattr(ntu_rgbd, "NUM_SETUPS", 1)
    return tmp_path / "data"


def test_ntu_release_is_split_by_camera(ntu_release, capsys):
    assert prepare_ntu.main(["--root", str(ntu_release)]) == 0
    assert "Ignored 1 files" in capsys.readouterr().out
    rows = read_list(str(ntu_release / "ntu_rgbd" / "camera2.txt"))
    assert len(rows) == 9 and all("C002" in r[0] for r in rows)
    assert sorted(int(r[2]) for r in rows) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    dataset = build_dataset(make_cfg("NTURGBD", ntu_release, ["camera1"], ["c2", "C003"]))
    assert len(dataset.train_x) + len(dataset.val) == 9 and len(dataset.val) == 3
    # by performer: one performer's three actions in val, the other two performers in train
    assert len({osp.basename(i.impath)[8:12] for i in dataset.val}) == 1
    assert_group_aware(dataset, "camera1", ntu_release / "ntu_rgbd")
    assert {(osp.basename(i.impath)[4:8], i.domain) for i in dataset.test} == {("C002", 0), ("C003", 1)}
    assert dataset.test[0].classname == ntu_rgbd.ACTIONS[dataset.test[0].label]


def test_ntu_missing_video_and_setup_are_reported(ntu_release, capsys, monkeypatch):
    os.remove(ntu_release / "ntu_rgbd" / "nturgb+d_rgb" / "S001C002P001R001A001_rgb.avi")
    assert prepare_ntu.run_main(prepare_ntu.main, ["--root", str(ntu_release)]) == 1
    err = capsys.readouterr().err
    assert "26 of the 27 NTU RGB+D 60 videos" in err and "camera2: 8 of 9 videos (1 missing)" in err
    monkeypatch.setattr(ntu_rgbd, "NUM_SETUPS", 2)
    assert prepare_ntu.run_main(prepare_ntu.main, ["--root", str(ntu_release)]) == 1
    assert "setup S002: no videos (nturgbd_rgb_s002.zip not extracted)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- shared behaviour
DATASETS = {"UCFHMDB": (ucf_hmdb, "prepare_ucf_hmdb"), "SSv2DG": (something_something, "prepare_ssv2"),
            "PKUMMD": (pku_mmd, "prepare_pku_mmd"), "NTURGBD": (ntu_rgbd, "prepare_ntu"),
            "EPICKitchensDG": (epic_kitchens_dg, "prepare_epic_kitchens_dg"), "JesterDG": (jester_dg, "prepare_jester_dg")}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_unknown_domain_lists_the_valid_ones_and_missing_release_names_path_and_command(name, tmp_path):
    cls = getattr(DATASETS[name][0], name)
    with pytest.raises(ValueError, match=r"Unknown target domain \"nowhere\".*Valid domains: \[") as info:
        build_dataset(make_cfg(name, tmp_path, cls.domains[:1], ["nowhere"]))
    assert all(domain in str(info.value) for domain in cls.domains)
    with pytest.raises(DatasetNotFoundError) as info:
        build_dataset(make_cfg(name, tmp_path, cls.domains[:1], cls.domains[1:2]))
    assert osp.join(str(tmp_path), cls.dataset_dir) in str(info.value)
    assert f"tools/{DATASETS[name][1]}.py --root" in str(info.value)


@pytest.mark.parametrize("script", [prepare_ucf_hmdb, prepare_ssv2, prepare_pku_mmd, prepare_ntu, prepare_jester_dg])
def test_a_missing_release_is_a_report_with_the_download_command(script, tmp_path, capsys):
    assert script.run_main(script.main, ["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not found" in err and str(tmp_path) in err and "Traceback" not in err
    assert "wget" in err or "Download" in err or "download" in err


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_end_to_end_ucf_hmdb(ucf_release, tmp_path):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    rows = train_once(ucf_release, tmp_path / "out", "ucf_hmdb", ["ucf"], ["hmdb"], segments=5)
    assert target_rows(rows) == {"hmdb": 36}


@pytest.mark.slow
def test_end_to_end_ssv2(ssv2_release, tmp_path):
    assert prepare_ssv2.main(["--root", str(ssv2_release)]) == 0
    rows = train_once(ssv2_release, tmp_path / "out", "ssv2_dg", ["doing"], ["pretending"], segments=5)
    assert target_rows(rows) == {"pretending": 6}


@pytest.mark.slow
def test_end_to_end_pku_mmd(pku_release, tmp_path):
    assert prepare_pku_mmd.main(["--root", str(pku_release)]) == 0
    rows = train_once(pku_release, tmp_path / "out", "pku_mmd", ["left"], ["middle", "right"])
    assert target_rows(rows) == {"middle": 6, "right": 6, "pooled": 12}


@pytest.mark.slow
def test_end_to_end_ntu(ntu_release, tmp_path):
    assert prepare_ntu.main(["--root", str(ntu_release)]) == 0
    rows = train_once(ntu_release, tmp_path / "out", "ntu_rgbd", ["camera1"], ["camera2", "camera3"])
    assert target_rows(rows) == {"camera2": 9, "camera3": 9, "pooled": 18}


# ---------------------------------------------------------------------------------------------- group-aware splits
def test_group_names_follow_each_release_naming_scheme():
    assert ucf_hmdb.UCFHMDB.group_of("ucf", "UCF-101/Archery/v_Archery_g07_c03") == "Archery/g07"
    assert ucf_hmdb.UCFHMDB.group_of("ucf", "UCF-101/Punch/v_Punch_g07_c01") == "Punch/g07"  # groups are per class
    hmdb = "hmdb51/kick_ball/Goal_Kick_Compilation_kick_ball_f_cm_np1_ba_med_12"
    assert ucf_hmdb.UCFHMDB.group_of("hmdb", hmdb) == "Goal_Kick_Compilation"
    walk = "hmdb51/walk/Goal_Kick_Compilation_walk_f_nm_np2_le_goo_0"
    assert ucf_hmdb.UCFHMDB.group_of("hmdb", walk) == "Goal_Kick_Compilation"  # one film, two classes
    assert ucf_hmdb.UCFHMDB.group_of("hmdb", "HMDB/climb/video_0060") == "HMDB/climb/video_0060"  # renamed copy
    assert ntu_rgbd.NTURGBD.group_of("camera1", "nturgb+d_rgb/S004C001P007R002A044_rgb") == "P007"
    assert pku_mmd.PKUMMD.group_of("left", "clips/left/0291-L_012") == "0291"
    assert pku_mmd.PKUMMD.group_of("left", "RGB_VIDEO/0291-L@10-90") == "0291"
    assert something_something.SSv2DG.group_of("doing", "20bn-something-something-v2/1234") == \
        "20bn-something-something-v2/1234"
    assert epic_kitchens_dg.EPICKitchensDG.group_of("D1", "rgb/test/P08/P08_15@120-140") == "P08_15"
    assert jester_dg.JesterDG.group_of("source", "20bn-jester-v1/25304") == "20bn-jester-v1/25304"


def test_grouped_split_keeps_groups_whole_and_classes_near_the_ratio():
    rng = np.random.default_rng(0)
    keys, labels, groups = [], [], []
    for g in range(60):  # groups of 1-7 clips; a third of them span several classes
        classes = rng.integers(0, 5, size=rng.integers(1, 8)) if g % 3 == 0 else [g % 5] * rng.integers(1, 8)
        for k, label in enumerate(classes):
            keys.append(f"g{g}_c{k}")
            labels.append(int(label))
            groups.append(f"g{g}")
    val = set(base.grouped_val_keys(keys, labels, groups, 0.3, seed=1))
    assert val == set(base.grouped_val_keys(keys, labels, groups, 0.3, seed=1))  # reproducible
    assert val != set(base.grouped_val_keys(keys, labels, groups, 0.3, seed=2))
    assert base.shared_groups(keys, val, lambda key: key.split("_")[0]) == (0, 0)
    for c in range(5):
        n = labels.count(c)
        n_val = sum(1 for key, label in zip(keys, labels) if label == c and key in val)
        assert abs(n_val - 0.3 * n) <= 4, (c, n_val, n)
    # single-clip groups: exactly the class-stratified split (splits of such benchmarks do not change)
    assert sorted(base.grouped_val_keys(keys, labels, keys, 0.3, 1)) == \
        sorted(base.stratified_val_keys(keys, labels, 0.3, 1))


def test_hmdb_split_keeps_a_film_with_clips_in_every_class_on_one_side(ucf_release):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    dataset = build_dataset(make_cfg("UCFHMDB", ucf_release, ["hmdb"], ["ucf"]))
    assert_group_aware(dataset, "hmdb", ucf_release / "ucf_hmdb")
    assert sorted(osp.basename(i.impath) for i in dataset.val) == sorted(
        hmdb_names(folder)[2] for folder in ucf_hmdb.HMDB_FOLDERS)  # Shared_Movie: one clip of each class


def test_a_clip_by_clip_split_file_is_refused_with_the_fix(ucf_release):
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    split_file = ucf_release / "ucf_hmdb" / "splits" / "ucf_val0.3_seed1.json"
    old = json.loads(split_file.read_text())
    old["val"] = [k for k in old["val"] if "g02" in k] + ["UCF-101/Archery/v_Archery_g01_c01"]
    del old["grouping"]  # as an older version wrote it
    split_file.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"made clip by clip: 1 of its 16 val clips come from 1 groups .* Delete it"):
        build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"]))
    os.remove(split_file)
    assert_group_aware(build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"])), "ucf",
                       ucf_release / "ucf_hmdb")


@pytest.mark.skipif(not osp.isdir(REFERENCE_LISTS), reason="the official APN list files are not on this machine")
def test_official_ucf_lists_are_not_group_aware():
    """Measured on the official APN lists: every UCF val clip shares its group with train clips; the HMDB lists
    name renamed folders (video_NNNN), so their grouping cannot be read from them."""
    assert prepare_ucf_hmdb.official_group_overlap(REFERENCE_LISTS, "ucf") == (406, 406, 255, 375)
    assert prepare_ucf_hmdb.official_group_overlap(REFERENCE_LISTS, "hmdb") == (366, 0, 0, 1800)


# ---------------------------------------------------------------------------------------------- partial releases
def test_every_missing_folder_of_both_releases_is_reported_at_once(ucf_release, capsys):
    for folder in ucf_hmdb.UCF_FOLDERS:  # all 15 UCF class folders gone, and the whole HMDB51 release
        shutil.rmtree(ucf_release / "ucf_hmdb" / "UCF-101" / folder)
    shutil.rmtree(ucf_release / "ucf_hmdb" / "hmdb51")
    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main, ["--root", str(ucf_release)]) == 1
    err = capsys.readouterr().err
    assert all(f"UCF-101/{folder}: missing (expected 3 videos)" in err for folder in ucf_hmdb.UCF_FOLDERS)
    assert "more" not in err and "HMDB51 (hmdb domain) not found" in err and "hmdb51_org" in err
    assert "tools/download.py ucf_hmdb" in err and "Traceback" not in err


def test_archive_folder_names_are_recognised_and_unextracted_class_archives_named(ucf_release, capsys):
    data = ucf_release / "ucf_hmdb"
    os.rename(data / "hmdb51", data / "hmdb51_org")  # where some copies of hmdb51_org.rar unpack
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    assert "linked" in capsys.readouterr().out and osp.islink(data / "hmdb51")
    assert len(read_list(str(data / "hmdb.txt"))) == 12 * 3
    os.remove(data / "hmdb51")
    shutil.rmtree(data / "hmdb51_org")
    (data / "hmdb51_org").mkdir()
    for folder in ucf_hmdb.HMDB_FOLDERS:  # hmdb51_org.rar holds one archive per class
        (data / "hmdb51_org" / f"{folder}.rar").write_bytes(b"Rar!")
    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main, ["--root", str(ucf_release)]) == 1
    err = capsys.readouterr().err
    assert "class archives are not extracted yet (12 of 12 class .rar files" in err and "unrar x" in err


def test_subset_prepares_a_trial_from_a_partial_release(ucf_release, capsys):
    for folder in ucf_hmdb.UCF_FOLDERS:  # a partial download: some folders hold only 2 of their 3 videos
        if folder < "C":
            os.remove(ucf_release / "ucf_hmdb" / "UCF-101" / folder / f"v_{folder}_g01_c02.avi")
    assert prepare_ucf_hmdb.run_main(prepare_ucf_hmdb.main, ["--root", str(ucf_release)]) == 1
    capsys.readouterr()
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release), "--subset", "2"]) == 0
    assert "trial subset" in capsys.readouterr().out
    rows = read_list(str(ucf_release / "ucf_hmdb" / "ucf.txt"))
    assert len(rows) == 15 * 2 and all(sum(r[0].split("/")[1] == f for r in rows) == 2 for f in ucf_hmdb.UCF_FOLDERS)
    # two clips per folder, from two groups, so the group-aware split has both sides
    dataset = build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"]))
    assert_group_aware(dataset, "ucf", ucf_release / "ucf_hmdb")
    assert len(dataset.test) == 12 * 2
    assert json.loads((ucf_release / "ucf_hmdb" / "prepared.json").read_text())["subset"] == 2
    # preparing the whole release afterwards replaces the subset's default split
    for folder in ucf_hmdb.UCF_FOLDERS:
        if folder < "C":
            write_video(str(ucf_release / "ucf_hmdb" / "UCF-101" / folder / f"v_{folder}_g01_c02.avi"))
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    full = build_dataset(make_cfg("UCFHMDB", ucf_release, ["ucf"], ["hmdb"]))
    assert len(full.train_x) + len(full.val) == 45 and len(full.val) == 15
