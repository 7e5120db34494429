"""STDN's video DG benchmarks (issue 26, item 2) on miniature releases: EPIC-Kitchens-55 DG (frame folders and
tars of untrimmed videos, action segments as frame ranges) and Jester DG (frame folders, label files), with
list files in the format of STDN's datalists/, fetched over HTTP (a local server) or copied from a clone."""
import csv
import hashlib
import http.server
import json
import os
import os.path as osp
import tarfile
import threading

import pytest
from PIL import Image

from datasets import epic_kitchens_dg as epic
from framework import build_dataset
from tests.test_benchmarks import frame_index, index_frame, make_cfg, train_once
from tools import prepare_epic_kitchens_dg, prepare_jester_dg, stdn_lists
from video.readers import read_frames

# Per kitchen: two videos of 300 frames; three segments of each class in each video (STDN lists: path start end).
EPIC_VIDEOS = {"D1": ["train/P08/P08_01", "test/P08/P08_15"], "D2": ["train/P01/P01_02", "train/P01/P01_05"],
               "D3": ["train/P22/P22_07", "test/P22/P22_03"]}
EPIC_CLASSES = [0, 1, 2]


def write_jpg(path: str, number: int) -> None:
    Image.fromarray(index_frame(number % 256)).save(path, quality=95)


def epic_segments(domain: str):
    """(path, start, stop, label) lines: segments of 20 frames at distinct places; frame numbers from 1."""
    rows = []
    for v, video in enumerate(EPIC_VIDEOS[domain]):
        for label in EPIC_CLASSES:
            for k in range(3):
                start = 1 + 90 * k + 30 * label if (domain, v, label, k) != ("D2", 0, 0, 0) else 0
                rows.append((video, start, start + 19, label))
    return rows


def write_stdn_lists(folder, monkeypatch, lists: dict) -> None:
    """STDN-format files under folder/datalists/<relpath>; the pinned SHA-256 table follows them."""
    for relpath, lines in lists.items():
        path = osp.join(folder, "datalists", relpath)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("".join(" ".join(map(str, line)) + "\n" for line in lines))
        monkeypatch.setitem(stdn_lists.SHA256, relpath, hashlib.sha256(open(path, "rb").read()).hexdigest())


@pytest.fixture
def epic_release(tmp_path, monkeypatch):
    """data/epic_kitchens_dg/rgb/<split>/<P>/<video>/frame_%010d.jpg (P08_15 as a tar, as the release ships
    it) and a clone of STDN's lists: val = the second segment of every class and video (clip by clip)."""
    rgb = tmp_path / "data" / "epic_kitchens_dg" / "rgb"
    for domain, videos in EPIC_VIDEOS.items():
        for video in videos:
            folder = rgb / video
            folder.mkdir(parents=True)
            for n in range(1, 301):
                write_jpg(str(folder / f"frame_{n:010d}.jpg"), n)
    tarred = rgb / "test" / "P08" / "P08_15"
    with tarfile.open(str(tarred) + ".tar", "w") as t:
        for name in sorted(os.listdir(tarred)):
            t.add(tarred / name, arcname=f"./{name}")
    for name in os.listdir(tarred):
        os.remove(tarred / name)
    os.rmdir(tarred)
    lists = {}
    for domain in EPIC_VIDEOS:
        segments = epic_segments(domain)
        val = [s for i, s in enumerate(segments) if i % 3 == 1]
        train = [s for s in segments if s not in val] + ([segments[0]] if domain == "D3" else [])  # STDN's repeat
        for part, lines in (("train", train), ("val", val), ("full", train + val)):
            lists[stdn_lists.EPIC.format(domain=domain, part=part)] = lines
    write_stdn_lists(tmp_path / "STDN", monkeypatch, lists)
    return tmp_path


def test_epic_segments_become_frame_ranges_of_the_video_folders(epic_release, capsys):
    root = epic_release / "data"
    assert prepare_epic_kitchens_dg.main(["--root", str(root), "--stdn-lists", str(epic_release / "STDN")]) == 0
    out = capsys.readouterr().out
    assert "Extracting rgb/test/P08/P08_15.tar" in out and "D3: STDN's list names 1 segment(s) twice" in out
    folder = root / "epic_kitchens_dg"
    assert (folder / "rgb" / "test" / "P08" / "P08_15" / "frame_0000000300.jpg").is_file()
    lines = (folder / "D1.txt").read_text().splitlines()[1:]
    assert len(lines) == 18 and "rgb/train/P08/P08_01@30-50 0 1" in lines  # frames 31..50: indices 30..49
    dataset = build_dataset(make_cfg("EPICKitchensDG", root, ["D1"], ["P01", "D3"]))  # P01 is D2's alias
    assert dataset.classnames == epic.CLASSES and dataset.num_classes == 8
    assert len(dataset.test) == 18 + 18 and {i.domain for i in dataset.test} == {0, 1}
    item = next(i for i in dataset.test if i.frame_range == (0, 19))  # STDN's start 0 reads from frame 1
    assert [frame_index(f) for f in read_frames(item, [0, 18])] == [1, 19]
    item = next(i for i in dataset.train_x + dataset.val if i.frame_range == (30, 50))
    assert [frame_index(f) for f in read_frames(item, [0, 19])] == [31, 50]
    videos = lambda items: {epic.video_of(osp.basename(i.impath)) for i in items}  # noqa: E731
    assert videos(dataset.val) and not videos(dataset.train_x) & videos(dataset.val)  # group-aware by video


def test_stdn_split_is_saved_on_request_and_warned_about(epic_release, capsys):
    root = epic_release / "data"
    args = ["--root", str(root), "--stdn-lists", str(epic_release / "STDN"), "--split", "stdn"]
    assert prepare_epic_kitchens_dg.main(args) == 0
    assert "NOT group-aware: 6 val clips come from 2 videos" in capsys.readouterr().out
    saved = json.loads((root / "epic_kitchens_dg" / "splits" / "D1_val0.3_seed1.json").read_text())
    assert saved["grouping"] == "none" and "KunyuLin/STDN" in saved["source"]
    dataset = build_dataset(make_cfg("EPICKitchensDG", root, ["D1"], ["D2"]))
    assert len(dataset.val) == 6 and "WARNING" in capsys.readouterr().out
    assert prepare_epic_kitchens_dg.main(args[:-2]) == 0  # back to the group-aware default
    assert "grouping" in json.loads((root / "epic_kitchens_dg" / "splits" / "D1_val0.3_seed1.json").read_text())
    assert "source" not in json.loads((root / "epic_kitchens_dg" / "splits" / "D1_val0.3_seed1.json").read_text())


def test_missing_epic_videos_are_listed_with_their_download_urls(epic_release, capsys):
    root = epic_release / "data"
    os.remove(root / "epic_kitchens_dg" / "rgb" / "test" / "P08" / "P08_15.tar")
    code = prepare_epic_kitchens_dg.run_main(prepare_epic_kitchens_dg.main,
                                             ["--root", str(root), "--stdn-lists", str(epic_release / "STDN")])
    err = capsys.readouterr().err
    assert code == 1 and "1 of the 6 EPIC-Kitchens-55 videos" in err and "Traceback" not in err
    assert f"{prepare_epic_kitchens_dg.BASE_URL}/test/P08/P08_15.tar" in err and "wget -c" in err


class ListServer(http.server.BaseHTTPRequestHandler):
    root = ""
    log: list = []

    def do_GET(self):
        path = osp.join(self.root, self.path.lstrip("/"))
        self.log.append(self.path)
        if not osp.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def list_server(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ListServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ListServer.log = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", ListServer
    httpd.shutdown()
    httpd.server_close()


def test_stdn_lists_are_fetched_by_url_and_checked(epic_release, list_server, monkeypatch, capsys):
    url, server = list_server
    server.root = str(epic_release / "STDN" / "datalists")
    root = epic_release / "data"
    assert prepare_epic_kitchens_dg.main(["--root", str(root), "--stdn-url", url]) == 0
    assert len(server.log) == 9 and (root / "epic_kitchens_dg" / "stdn_lists" / "epic_kitchens_55_da_D2_vallist.txt").is_file()
    relpath = stdn_lists.EPIC.format(domain="D1", part="val")
    monkeypatch.setitem(stdn_lists.SHA256, relpath, "0" * 64)  # not the file of the pinned commit
    code = prepare_epic_kitchens_dg.run_main(prepare_epic_kitchens_dg.main, ["--root", str(root), "--stdn-url", url])
    assert code == 1 and "is not the file of STDN's lists" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Jester DG
JESTER = {0: ("Swiping Left", "Sliding Two Fingers Left"), 1: ("Swiping Right", "Sliding Two Fingers Right"),
          2: ("Zooming In With Full Hand", "Zooming In With Two Fingers")}


@pytest.fixture
def jester_release(tmp_path, monkeypatch):
    """jester_dg/20bn-jester-v1/<id>/00001.jpg.., the label files, STDN-style lists (3 classes, ids from 100)."""
    data = tmp_path / "data" / "jester_dg"
    lists, rows, video_id = {}, {"train": [], "validation": []}, 100
    for part, per_class in (("source_train", 3), ("source_val", 1), ("target_full", 2)):
        lines = []
        for label, (source_class, target_class) in JESTER.items():
            for _ in range(per_class):
                frames = 10 + video_id % 3
                folder = data / "20bn-jester-v1" / str(video_id)
                folder.mkdir(parents=True)
                for n in range(1, frames + 1):
                    write_jpg(str(folder / f"{n:05d}.jpg"), n)
                lines.append((video_id, 0, frames, label))
                name = source_class if part.startswith("source") else target_class
                rows["train" if video_id % 2 else "validation"].append((video_id, name))
                video_id += 1
        lists[stdn_lists.JESTER.format(part=part)] = lines
    write_stdn_lists(tmp_path / "STDN", monkeypatch, lists)
    for part, entries in rows.items():
        with open(data / f"jester-v1-{part}.csv", "w", newline="") as f:
            csv.writer(f, delimiter=";").writerows(entries)
    return tmp_path


def test_jester_classes_are_named_from_the_release_and_stdns_split_is_saved(jester_release, capsys):
    root = jester_release / "data"
    assert prepare_jester_dg.main(["--root", str(root), "--stdn-lists", str(jester_release / "STDN")]) == 0
    dataset = build_dataset(make_cfg("JesterDG", root, ["source"], ["target"]))
    assert dataset.classnames == [f"{s} / {t}" for s, t in JESTER.values()]
    assert len(dataset.train_x) == 9 and len(dataset.val) == 3 and len(dataset.test) == 6
    saved = json.loads((root / "jester_dg" / "splits" / "source_val0.3_seed1.json").read_text())
    assert "KunyuLin/STDN" in saved["source"] and len(saved["val"]) == 3
    item = dataset.test[0]
    assert item.is_frame_folder and item.num_frames == 10 + 112 % 3
    assert [frame_index(f) for f in read_frames(item, [0, item.num_frames - 1])] == [1, item.num_frames]
    assert "WARNING" not in capsys.readouterr().out  # each video is its own group: nothing shared


def test_a_jester_video_shorter_than_its_list_line_is_refused(jester_release, capsys):
    root = jester_release / "data"
    os.remove(root / "jester_dg" / "20bn-jester-v1" / "101" / "00010.jpg")
    code = prepare_jester_dg.run_main(prepare_jester_dg.main, ["--root", str(root), "--stdn-lists",
                                                               str(jester_release / "STDN")])
    err = capsys.readouterr().err
    assert code == 1 and "101: 11 frames, the list reads frames 1..12" in err


# ---------------------------------------------------------------------------------------------- one epoch each
def test_one_epoch_on_each_miniature(epic_release, jester_release, tmp_path):
    epic_root, jester_root = epic_release / "data", jester_release / "data"
    assert prepare_epic_kitchens_dg.main(["--root", str(epic_root), "--stdn-lists", str(epic_release / "STDN")]) == 0
    rows = train_once(epic_root, tmp_path / "epic", "epic_kitchens_dg", ["D1"], ["D2", "D3"])
    assert {(r["split"], r["domain"]): r["n"] for r in rows}[("target", "pooled")] == 36
    assert prepare_jester_dg.main(["--root", str(jester_root), "--stdn-lists", str(jester_release / "STDN")]) == 0
    rows = train_once(jester_root, tmp_path / "jester", "jester_dg", ["source"], ["target"])
    assert {(r["split"], r["domain"]): r["n"] for r in rows}[("target", "target")] == 6


# ---------------------------------------------------------------------------------------------- the grid's tasks
@pytest.mark.parametrize("benchmark,tasks", [
    ("epic_kitchens_dg", [("D1", "D2 D3"), ("D2", "D1 D3"), ("D3", "D1 D2")]),
    ("jester_dg", [("source", "target")]),
    ("pacs", [("cartoon photo sketch", "art_painting"), ("art_painting photo sketch", "cartoon"),
              ("art_painting cartoon sketch", "photo"), ("art_painting cartoon photo", "sketch")]),
    ("digits_dg", [("mnist_m svhn syn", "mnist"), ("mnist svhn syn", "mnist_m"), ("mnist mnist_m syn", "svhn"),
                   ("mnist mnist_m svhn", "syn")]),
    ("office_home_dg", [("clipart product real_world", "art"), ("art product real_world", "clipart"),
                        ("art clipart real_world", "product"), ("art clipart product", "real_world")]),
])
def test_the_grid_script_knows_the_tasks_of_the_new_benchmarks(benchmark, tasks):
    import re
    import subprocess
    from tests.helpers import REPO
    proc = subprocess.run(["bash", "scripts/paper_tasks.sh", "--dry-run", "--seeds", "1", benchmark, "VideoVanilla"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if line.startswith("python train.py")]
    found = [re.search(r"--source-domains (.+) --target-domains (.+) --output-dir", c).groups() for c in commands]
    assert found == tasks and all(f"configs/datasets/{benchmark}.yaml" in c for c in commands)
    assert osp.isfile(osp.join(REPO, "configs", "datasets", f"{benchmark}.yaml"))
