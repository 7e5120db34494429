"""Video input pipeline on real files: list files, decoding (mp4 via decord, PNG frame folders), TSN sampling,
clip-consistent transforms and the Dassl wrapper. Frame k of every generated clip is a flat gray image of level
20 + 10 * k, so a decoded frame tells which frame it is."""
import os
import re
import sys

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from defaults import extend_cfg
from framework import get_cfg_default
from video import transforms as T
from video.datum import VideoDatum
from video.listfile import ListEntry, ListFileWarning, parse_list_file
from video.readers import VideoReadError, count_frames, decord_available, read_frames, resolve_backend
from video.sampling import sample_segment_indices
from trainers.results import collect_predictions, split_rows
from video.wrapper import VideoDatasetWrapper

NUM_FRAMES, HEIGHT, WIDTH = 20, 48, 64


def gray(k: int) -> int:
    return 20 + 10 * k


def frame_ids(frames: np.ndarray) -> list:
    """Recover frame numbers from decoded gray levels (lossy codecs shift them by a few levels)."""
    levels = frames.reshape(len(frames), -1).mean(axis=1)
    ids = [round((level - 20) / 10) for level in levels]
    assert np.allclose(levels, [gray(k) for k in ids], atol=5), levels
    return ids


def write_mp4(path: str, faststart: bool = False) -> str:
    """NUM_FRAMES gray frames; `faststart` puts the index (moov) first and uses noise frames, so that cutting the
    file in half cuts into the frame data and not only into the index."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) if faststart else
              np.full((HEIGHT, WIDTH, 3), gray(k), np.uint8) for k in range(NUM_FRAMES)]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, "w", options=options) as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: str) -> str:
    """NUM_FRAMES gray PNG frames img_00001.png, img_00002.png, ... (TSN folders start at 1)."""
    os.makedirs(folder)
    for k in range(NUM_FRAMES):
        frame = Image.fromarray(np.full((HEIGHT, WIDTH, 3), gray(k), np.uint8))
        frame.save(os.path.join(folder, f"img_{k + 1:05d}.png"))
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One good mp4, one good frame folder and the broken files, written once for the module."""
    d = tmp_path_factory.mktemp("clips")
    paths = {"mp4": write_mp4(str(d / "good.mp4")), "folder": write_frames(str(d / "good_frames"))}
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    for name, faststart in (("half", False), ("half_faststart", True)):
        write_mp4(str(d / f"{name}_src.mp4"), faststart=faststart)
        data = (d / f"{name}_src.mp4").read_bytes()
        (d / f"{name}.mp4").write_bytes(data[:len(data) // 2])
    for name in ("empty", "garbage", "half", "half_faststart"):
        paths[name] = str(d / f"{name}.mp4")
    paths["gap"] = write_frames(str(d / "gap_frames"))
    os.remove(os.path.join(paths["gap"], "img_00008.png"))
    return paths


def folder_datum(path: str, **kwargs) -> VideoDatum:
    return VideoDatum(path, frame_tmpl="img_{:05d}.png", first_frame=1, **kwargs)


def make_cfg(**overrides):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.NUM_SEGMENTS = 4
    cfg.DATALOADER.NUM_WORKERS = 0
    for key, value in overrides.items():
        node, name = key.split(".")
        setattr(cfg[node], name, value)
    return cfg


# ---------------------------------------------------------------------------------------------- list files


def test_list_file_parses_comments_blank_lines_and_root(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("# path n label\n\nclass_a/v1 30 0\n  /abs/v2\t12   3  \n")
    assert parse_list_file(str(lst), root="/data") == [ListEntry("/data/class_a/v1", 30, 0),
                                                       ListEntry("/abs/v2", 12, 3)]
    assert parse_list_file(str(lst))[0].path == "class_a/v1"


@pytest.mark.parametrize("bad_line", ["clip 30", "clip thirty 1", "clip 30 1 extra", "clip 30 -1"])
def test_list_file_malformed_line_names_file_line_and_format(tmp_path, bad_line):
    lst = tmp_path / "bad.txt"
    lst.write_text(f"ok 10 0\n# comment\n{bad_line}\n")
    with pytest.raises(ValueError) as info:
        parse_list_file(str(lst))
    message = str(info.value)
    assert str(lst) in message and "line 3" in message and bad_line in message and "<num_frames>" in message


def test_list_file_warns_about_a_clip_line_behind_a_hash(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("# path n label\n#clips/v1 30 0\nclips/v2 12 3\n")
    with pytest.warns(ListFileWarning, match=r"line 2: \"#clips/v1 30 0\".*comment"):
        assert [e.path for e in parse_list_file(str(lst))] == ["clips/v2"]


@pytest.mark.parametrize("content,message", [(b"\xef\xbb\xbfclip 10 0\n", "byte-order mark"),
                                             (b"\xff\xfec\x00", "byte-order mark"),
                                             (b"ok 10 0\ncaf\xe9 10 1\n", "not UTF-8 \\(line 2")])
def test_list_file_with_bom_or_not_utf8_names_the_file(tmp_path, content, message):
    lst = tmp_path / "bad.txt"
    lst.write_bytes(content)
    with pytest.raises(ValueError, match=f"{re.escape(str(lst))}.*{message}"):
        parse_list_file(str(lst))


def test_list_file_missing_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        parse_list_file(str(tmp_path / "nope.txt"))


# ---------------------------------------------------------------------------------------------- readers


def test_read_mp4_returns_requested_frames_in_order(clips):
    datum = VideoDatum(clips["mp4"], num_frames=999)  # a wrong list-file count must not matter
    assert count_frames(datum) == NUM_FRAMES
    frames = read_frames(datum, [0, 3, 3, 10, 19])
    assert frames.dtype == np.uint8 and frames.shape == (5, HEIGHT, WIDTH, 3)
    assert frame_ids(frames) == [0, 3, 3, 10, 19]


def test_read_frame_folder_template_and_first_frame(clips):
    datum = folder_datum(clips["folder"])  # num_frames unknown: counted from the files
    assert count_frames(datum) == NUM_FRAMES
    assert count_frames(folder_datum(clips["folder"], num_frames=7)) == 7  # a given count is trusted
    frames = read_frames(datum, [0, 1, 19])
    assert frames.shape == (3, HEIGHT, WIDTH, 3)
    assert (frames[:, 0, 0, 0] == [gray(0), gray(1), gray(19)]).all()  # PNG is lossless


@pytest.mark.parametrize("kind", ["mp4", "folder"])
def test_frame_range_offsets_indices(clips, kind):
    path = clips[kind]
    datum = VideoDatum(path, frame_range=(5, 15)) if kind == "mp4" else folder_datum(path, frame_range=(5, 15))
    assert count_frames(datum) == 10
    assert frame_ids(read_frames(datum, [0, 9])) == [5, 14]
    with pytest.raises(ValueError, match="frame_range"):
        read_frames(datum, [10])


@pytest.mark.parametrize("name", ["empty", "garbage", "half", "half_faststart"])
def test_broken_video_raises_video_read_error_naming_file(clips, name):
    datum = VideoDatum(clips[name])
    for read in (lambda: count_frames(datum), lambda: read_frames(datum, [0])):
        with pytest.raises(VideoReadError) as info:
            read()
        assert clips[name] in str(info.value) and "SKIP_CORRUPT" in str(info.value)
        assert info.value.path == clips[name] and info.value.reason
    if name == "empty":
        assert "0 bytes" in info.value.reason  # said plainly, not as a decoder error


def test_index_beyond_decodable_frames_is_video_read_error(clips):
    datum = VideoDatum(clips["mp4"], frame_range=(15, 25))  # the file has 20 frames
    with pytest.raises(VideoReadError, match=f"{re.escape(clips['mp4'])}.*only {NUM_FRAMES} frames"):
        read_frames(datum, [9])


@pytest.mark.parametrize("num_frames", [-1, 7, NUM_FRAMES])
def test_gap_in_frame_numbering_names_folder_and_missing_frame(clips, num_frames):
    """Frame 8 of 20 is missing: an error with or without a list count (before: silently cut at the gap)."""
    datum = folder_datum(clips["gap"], num_frames=num_frames)
    missing = re.escape(os.path.join(clips["gap"], "img_00008.png"))
    for read in (lambda: count_frames(datum), lambda: read_frames(datum, [0, 6])):
        with pytest.raises(VideoReadError, match=f"{re.escape(clips['gap'])}.*{missing}.*gap"):
            read()


def test_folder_with_fewer_frames_than_the_list_count_names_the_first_missing(clips):
    with pytest.raises(VideoReadError, match=re.escape(os.path.join(clips["folder"], "img_00021.png"))):
        count_frames(folder_datum(clips["folder"], num_frames=NUM_FRAMES + 5))


def test_explicit_decord_without_decord_says_how_to_install_or_switch(clips, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` fail
    with pytest.raises(ImportError, match="pip install decord.*VIDEO_BACKEND pyav"):
        read_frames(VideoDatum(clips["mp4"]), [0], backend="decord")
    assert resolve_backend("auto") == "pyav"  # auto falls back to PyAV, which reads the same frames
    assert frame_ids(read_frames(VideoDatum(clips["mp4"]), [0, 3, 19])) == [0, 3, 19]
    with pytest.raises(ValueError, match="VIDEO_BACKEND"):
        resolve_backend("ffmpeg")


def write_h264(path: str, n: int = 90, gop: int = 10, bframes: int = 2) -> str:
    """A real-world-like file: H.264 with B-frames (decode order != presentation order) and a keyframe every
    `gop` frames, each frame with its own content (gray level plus a noise patch)."""
    rng = np.random.default_rng(1)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": str(gop), "bf": str(bframes)})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for k in range(n):
            img = np.full((HEIGHT, WIDTH, 3), (7 * k) % 256, np.uint8)
            img[:16, :16] = rng.integers(0, 256, (16, 16, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.skipif(not decord_available(), reason="decord has no wheel for this platform: nothing to compare")
@pytest.mark.parametrize("kind", ["mp4", "h264"])
def test_pyav_and_decord_read_the_same_frames(clips, tmp_path, kind):
    path = clips["mp4"] if kind == "mp4" else write_h264(str(tmp_path / "gop.mp4"))
    datum = VideoDatum(path)
    n = count_frames(datum, "decord")
    assert count_frames(datum, "pyav") == n == (NUM_FRAMES if kind == "mp4" else 90)
    rng = np.random.default_rng(0)
    index_sets = [[0], [n - 1], list(range(n)), [n - 1, 2, 2, n // 2]]  # all, unsorted and repeated
    index_sets += [sorted(rng.integers(0, n, 5).tolist()) for _ in range(6)]  # TSN-like reads across GOPs
    for indices in index_sets:
        expected = read_frames(datum, indices, backend="decord")
        assert np.array_equal(read_frames(datum, indices, backend="pyav"), expected), indices
    ranged = VideoDatum(path, frame_range=(n // 2, n))  # a clip cut from a longer video (seek, not decode all)
    assert np.array_equal(read_frames(ranged, [0, 3], "pyav"), read_frames(ranged, [0, 3], "decord"))


@pytest.mark.parametrize("name", ["empty", "garbage", "half", "half_faststart"])
def test_pyav_broken_video_raises_video_read_error_naming_file(clips, name):
    datum = VideoDatum(clips[name])
    with pytest.raises(VideoReadError) as info:
        read_frames(datum, [0, NUM_FRAMES - 1], backend="pyav")
    assert clips[name] in str(info.value) and info.value.reason


# ---------------------------------------------------------------------------------------------- sampling


def segment_of(index: int, n: int, m: int) -> int:
    return next(i for i in range(m) if i * n // m <= index < (i + 1) * n // m)


@pytest.mark.parametrize("n,m", [(5, 5), (8, 3), (20, 4), (23, 5), (100, 7)])
def test_train_indices_one_per_segment(n, m):
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        indices = sample_segment_indices(n, m, train=True)
        assert [segment_of(i, n, m) for i in indices] == list(range(m))  # in range, in its own segment
        assert indices == sorted(indices)
        seen.update(indices)
    if n <= 23:
        assert seen == set(range(n))  # every frame of every segment gets drawn


def test_test_indices_are_segment_centres():
    assert sample_segment_indices(10, 5, train=False) == [1, 3, 5, 7, 9]
    assert sample_segment_indices(8, 3, train=False) == [1, 3, 6]  # segments [0,2) [2,5) [5,8)
    assert sample_segment_indices(1, 1, train=False) == [0]


def test_short_video_is_deterministic_in_both_modes():
    expected = [0, 0, 1, 1, 2]
    for seed in range(5):
        torch.manual_seed(seed)
        assert sample_segment_indices(3, 5, train=True) == expected
        assert sample_segment_indices(3, 5, train=False) == expected


def test_train_randomness_follows_torch_seed():
    draws = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        draws.append(sample_segment_indices(100, 5, train=True))
    assert draws[0] == draws[1] != draws[2]
    gen = torch.Generator().manual_seed(3)
    assert sample_segment_indices(100, 5, True, generator=gen) == \
        sample_segment_indices(100, 5, True, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("n", [0, -1])
def test_sampling_rejects_empty_clip(n):
    with pytest.raises(ValueError, match="num_frames"):
        sample_segment_indices(n, 5, train=True)


# ---------------------------------------------------------------------------------------------- transforms


def normalized(level: float) -> torch.Tensor:
    mean, std = torch.tensor(T.IMAGENET_MEAN), torch.tensor(T.IMAGENET_STD)
    return (level / 255 - mean) / std


@pytest.mark.parametrize("make", [lambda: T.TrainClipTransform((24, 28)), lambda: T.TestClipTransform((24, 28), 32)])
def test_transform_shape_dtype_and_normalisation(make):
    clip = np.full((5, HEIGHT, WIDTH, 3), 100, np.uint8)
    out = make()(clip)
    assert out.shape == (5, 3, 24, 28) and out.dtype == torch.float32
    assert torch.allclose(out, normalized(100).view(1, 3, 1, 1).expand_as(out), atol=1e-5)


def test_train_transform_applies_one_crop_and_flip_to_all_frames():
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    clip = np.stack([frame] * 4)
    tfm = T.TrainClipTransform((16, 16))
    outputs = []
    for seed in range(40):
        torch.manual_seed(seed)
        out = tfm(clip)
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4)), f"frames differ for seed {seed}"
        outputs.append(out[0])
    assert len({o.sum().item() for o in outputs}) > 10  # the crop really is random between calls


@pytest.mark.parametrize("flip", [True, False])
def test_train_transform_flips_the_clip_half_of_the_time(flip):
    ramp = np.broadcast_to(np.arange(WIDTH, dtype=np.uint8)[None, :, None] * 4, (HEIGHT, WIDTH, 3))
    clip = np.stack([ramp, ramp])
    tfm = T.TrainClipTransform((16, 16), flip=flip)
    flipped = 0
    for seed in range(40):
        torch.manual_seed(seed)
        out = tfm(clip)
        left, right = out[..., 0].mean(dim=(1, 2)), out[..., -1].mean(dim=(1, 2))
        assert (left > right).all() or (left < right).all()  # both frames flipped or neither
        flipped += int(left[0] > right[0])
    assert (10 <= flipped <= 30) if flip else flipped == 0


def test_multiscale_crop_sizes_and_positions():
    tfm = T.TrainClipTransform((16, 16), scales=(1.0, 0.875, 0.75, 0.66), max_distort=1)
    sides = [48, 42, 36, 31]  # int(48 * s)
    seen_pairs, seen_positions = set(), set()
    for seed in range(600):
        torch.manual_seed(seed)
        top, left, h, w = tfm.sample_crop(HEIGHT, WIDTH)
        assert abs(sides.index(h) - sides.index(w)) <= 1
        assert 0 <= top <= HEIGHT - h and 0 <= left <= WIDTH - w
        seen_pairs.add((h, w))
        hq, wq = (HEIGHT - h) // 4, (WIDTH - w) // 4  # TSN's quarter steps of the free space
        if hq > 0:  # else every vertical position is 0
            assert top % hq == 0 and left % wq == 0
            seen_positions.add((left // wq, top // hq))
    assert len(seen_pairs) == 10  # 4 + 3 + 3 pairs within max_distort 1
    corners, centre = {(0, 0), (4, 0), (0, 4), (4, 4)}, {(2, 2)}
    edge_midpoints, quarter_points = {(0, 2), (4, 2), (2, 0), (2, 4)}, {(1, 1), (3, 1), (1, 3), (3, 3)}
    assert seen_positions == corners | centre | edge_midpoints | quarter_points


def test_test_transform_is_deterministic_centre_crop():
    ramp = np.broadcast_to(np.arange(WIDTH, dtype=np.uint8)[None, :, None] * 4, (HEIGHT, WIDTH, 3))
    tfm = T.TestClipTransform((24, 24), scale_size=32)  # 48x64 -> 32x42, crop columns 9..32
    out = tfm(np.stack([ramp]))
    assert torch.equal(out, tfm(np.stack([ramp])))
    level = (out[0, 0] * T.IMAGENET_STD[0] + T.IMAGENET_MEAN[0]) * 255
    assert abs(level.mean().item() - 4 * (WIDTH - 1) / 2) < 6  # centred: the mean of the ramp
    assert (level[:, 1:] >= level[:, :-1]).all()  # not flipped


def test_build_video_transform_from_cfg():
    cfg = make_cfg(**{"INPUT.SIZE": (112, 112), "INPUT.INTERPOLATION": "bicubic", "INPUT.RANDOM_FLIP": False})
    train, test = T.build_video_transform(cfg, True), T.build_video_transform(cfg, False)
    assert isinstance(train, T.TrainClipTransform) and not train.flip and train.interpolation == "bicubic"
    assert isinstance(test, T.TestClipTransform) and test.scale_size == 128  # 112 * 256 / 224
    assert "scales=(1.0, 0.875, 0.75, 0.66)" in repr(train) and "scale_size=128" in repr(test)
    cfg.INPUT.TEST_SCALE_SIZE = 150
    assert T.build_video_transform(cfg, False).scale_size == 150
    cfg.INPUT.INTERPOLATION = "lanczos"
    with pytest.raises(ValueError, match="bilinear"):
        T.build_video_transform(cfg, True)


# ---------------------------------------------------------------------------------------------- wrapper


def mean_levels(clip: np.ndarray) -> torch.Tensor:
    """A 'transform' that keeps each decoded frame's gray level, to see which frames were sampled."""
    return torch.tensor(clip.reshape(len(clip), -1).mean(axis=1))


@pytest.fixture
def items(clips):
    return [VideoDatum(clips["mp4"], label=1, domain=0), folder_datum(clips["folder"], label=2, domain=1)]


def test_wrapper_item_keys_and_shapes(items):
    cfg = make_cfg()
    wrapper = VideoDatasetWrapper(cfg, items, T.build_video_transform(cfg, True), is_train=True)
    item = wrapper[1]
    assert (item["label"], item["domain"], item["impath"], item["index"]) == (2, 1, items[1].impath, 1)
    assert item["img"].shape == (4, 3, 32, 32) and item["img"].dtype == torch.float32
    batch = next(iter(DataLoader(wrapper, batch_size=2)))
    assert batch["img"].shape == (2, 4, 3, 32, 32)
    assert batch["label"].tolist() == [1, 2] and batch["domain"].tolist() == [0, 1]


@pytest.mark.parametrize("is_train", [False, True])
def test_wrapper_samples_segments_then_decodes(items, is_train):
    wrapper = VideoDatasetWrapper(make_cfg(), items, mean_levels, is_train=is_train)
    for index in range(2):
        ids = frame_ids(wrapper[index]["img"].numpy())
        if is_train:
            assert [segment_of(i, NUM_FRAMES, 4) for i in ids] == [0, 1, 2, 3]
        else:
            assert ids == [2, 7, 12, 17]  # centres of [0,5) [5,10) [10,15) [15,20)


def test_wrapper_transform_list_sees_the_same_frames(items):
    wrapper = VideoDatasetWrapper(make_cfg(), items, [mean_levels, mean_levels, mean_levels], is_train=True)
    torch.manual_seed(0)
    item = wrapper[0]
    assert torch.equal(item["img"], item["img2"]) and torch.equal(item["img"], item["img3"])


def test_wrapper_k_transforms_and_img0(items):
    cfg = make_cfg(**{"DATALOADER.K_TRANSFORMS": 3, "DATALOADER.RETURN_IMG0": True})
    train = VideoDatasetWrapper(cfg, items, T.build_video_transform(cfg, True), is_train=True)
    item = train[0]
    assert isinstance(item["img"], list) and len(item["img"]) == 3
    assert all(clip.shape == (4, 3, 32, 32) for clip in item["img"]) and item["img0"].shape == (4, 3, 32, 32)
    test = VideoDatasetWrapper(cfg, items, T.build_video_transform(cfg, False), is_train=False)
    item = test[0]
    assert torch.is_tensor(item["img"]) and torch.equal(item["img"], item["img0"])  # K is for training only


def test_wrapper_rejects_missing_transform_and_non_video_items(items):
    with pytest.raises(ValueError, match="transform"):
        VideoDatasetWrapper(make_cfg(), items)
    with pytest.raises(TypeError, match="VideoDatum"):
        VideoDatasetWrapper(make_cfg(), items + ["clip.mp4"], mean_levels)


def test_wrapper_corrupt_clip_raises_by_default(clips, items):
    data = [VideoDatum(clips["garbage"]), *items]
    wrapper = VideoDatasetWrapper(make_cfg(), data, mean_levels)
    with pytest.raises(VideoReadError, match=re.escape(clips["garbage"])):
        wrapper[0]


def test_wrapper_error_keeps_its_type_through_a_worker(clips):
    wrapper = VideoDatasetWrapper(make_cfg(), [VideoDatum(clips["empty"])], mean_levels)
    with pytest.raises(VideoReadError, match=re.escape(clips["empty"])):
        next(iter(DataLoader(wrapper, num_workers=1)))


def test_wrapper_skip_corrupt_in_training_continues_with_next_clip(clips, capsys):
    data = [VideoDatum(clips["half"]), folder_datum(clips["gap"], num_frames=NUM_FRAMES),  # both unreadable
            folder_datum(clips["folder"], label=7)]
    wrapper = VideoDatasetWrapper(make_cfg(**{"DATASET.SKIP_CORRUPT": True}), data, mean_levels, is_train=True)
    item = wrapper[0]
    assert (item["index"], item["label"], item["impath"], item["skipped"]) == (2, 7, data[2].impath, False)
    assert [segment_of(i, NUM_FRAMES, 4) for i in frame_ids(item["img"].numpy())] == [0, 1, 2, 3]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[skip]")]
    assert [line.split(":")[0] for line in lines] == [f"[skip] unreadable clip {data[i].impath}" for i in (0, 1)]
    assert all("replaced by the next readable clip" in line for line in lines)  # on stdout: log.txt has it
    counts = [int(re.search(r"(\d+) skipped so far in this process\)$", line).group(1)) for line in lines]
    assert counts[1] == counts[0] + 1
    assert "img_00008.png" in lines[1]
    wrapper[2]  # readable: nothing more is logged
    assert "[skip]" not in capsys.readouterr().out


def test_wrapper_skip_corrupt_wraps_around_and_fails_when_nothing_is_readable(clips, items):
    cfg = make_cfg(**{"DATASET.SKIP_CORRUPT": True})
    data = [items[0], VideoDatum(clips["empty"])]
    assert VideoDatasetWrapper(cfg, data, mean_levels, is_train=True)[1]["index"] == 0
    broken = [VideoDatum(clips[name]) for name in ("empty", "garbage", "half")]
    with pytest.raises(RuntimeError, match="None of the 3 clips"):
        VideoDatasetWrapper(cfg, broken, mean_levels, is_train=True)[0]


def test_evaluation_leaves_unreadable_clips_out_and_counts_them_per_domain(clips, items, capsys):
    """In val/test a broken clip is never replaced by another (maybe another domain's) clip: it is dropped,
    n counts evaluated clips only, and the table row of its domain says how many were skipped."""
    data = [items[0], VideoDatum(clips["garbage"], label=1, domain=1), items[1],
            VideoDatum(clips["half"], label=2, domain=1)]
    cfg = make_cfg(**{"DATASET.SKIP_CORRUPT": True})
    wrapper = VideoDatasetWrapper(cfg, data, T.build_video_transform(cfg, False), is_train=False)
    assert [wrapper[i]["skipped"] for i in range(4)] == [False, True, False, True]
    assert wrapper[1]["index"] == 1 and wrapper[1]["impath"] == clips["garbage"]  # not the next clip
    loader = DataLoader(wrapper, batch_size=3)
    seen = []
    preds = collect_predictions(lambda x: seen.append(x.shape[0]) or torch.zeros(x.shape[0], 3), loader,
                                torch.device("cpu"))
    assert seen == [2] and len(preds.labels) == 2  # the second batch is all skipped: no forward and preds.skipped.tolist() == [1, 1]
    rows = {row["domain"]: row for row in split_rows("target", ["a", "b"], preds)}
    assert (rows["a"]["n"], rows["a"]["skipped"]) == (1, 0)
    assert (rows["b"]["n"], rows["b"]["skipped"]) == (1, 2)
    assert (rows["pooled"]["n"], rows["pooled"]["skipped"]) == (2, 2)
    out = capsys.readouterr().out
    assert f"[skip] evaluation leaves out unreadable clip {clips['garbage']}" in out
    assert f"[skip] evaluation leaves out unreadable clip {clips['half']}" in out


def test_decoded_clip_cache_gives_the_same_items_and_decodes_each_clip_once(items, monkeypatch):
    import video.wrapper as wrapper_module
    reads = []
    real_read = wrapper_module.read_sampled_frames
    monkeypatch.setattr(wrapper_module, "read_sampled_frames",
                        lambda item, choose, backend: reads.append(item.impath) or real_read(item, choose, backend))
    cfg = make_cfg()
    plain = VideoDatasetWrapper(cfg, items, T.build_video_transform(cfg, True), is_train=True)
    cfg = make_cfg(**{"DATASET.DECODED_CACHE_MB": 1.0})
    cached = VideoDatasetWrapper(cfg, items, T.build_video_transform(cfg, True), is_train=True)
    for wrapper in (plain, cached):
        torch.manual_seed(0)
        wrapper.epochs = [[wrapper[i]["img"] for i in range(2)] for _ in range(3)]  # three "epochs"
    assert all(torch.equal(a, b) for ea, eb in zip(plain.epochs, cached.epochs) for a, b in zip(ea, eb))
    assert len(reads) == 6 + 2  # plain: every read decodes; cached: once per clip
    assert cached.cache.used == sum(clip.nbytes for clip in cached.cache.clips.values()) > 0
    tiny = VideoDatasetWrapper(make_cfg(**{"DATASET.DECODED_CACHE_MB": 0.01}), items, mean_levels)
    tiny[0]
    assert tiny.cache.clips == {}  # over the budget: read from disk every time


def test_wrapper_logs_the_video_backend(items, capsys, monkeypatch):
    import video.wrapper as wrapper_module
    monkeypatch.setattr(wrapper_module, "_announced", set())
    VideoDatasetWrapper(make_cfg(**{"DATASET.VIDEO_BACKEND": "pyav"}), items, mean_levels)
    VideoDatasetWrapper(make_cfg(**{"DATASET.VIDEO_BACKEND": "pyav"}), items, mean_levels)
    out = capsys.readouterr().out
    assert out.count("Video files are read with pyav (DATASET.VIDEO_BACKEND pyav)") == 1
