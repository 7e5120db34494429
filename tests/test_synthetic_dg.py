"""The embedded synthetic benchmark: determinism, the temporal-order design, domain shifts, files, Dassl dataset."""
import filecmp
import json
import os
import os.path as osp

import decord
import numpy as np
import pytest
from PIL import Image

import datasets.synthetic_videos as sv
from datasets.base import DatasetNotFoundError
from datasets.synthetic_dg import SyntheticVideoDG  # noqa: F401  (registers the dataset)
from defaults import extend_cfg
from framework import build_dataset, get_cfg_default

SMALL = sv.GeneratorParams(seed=0, videos_per_class=2, num_frames=12, frame_size=20, format="video")
T, S = 24, 32  # default clip shape for latent-level tests


def make_cfg(root, source=("studio",), target=("street", "sketch", "glimpse"), **synthetic):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "SyntheticVideoDG"
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.SOURCE_DOMAINS = list(source)
    cfg.DATASET.TARGET_DOMAINS = list(target)
    for key, value in {"VIDEOS_PER_CLASS": 2, "NUM_FRAMES": 12, "FRAME_SIZE": 20, **synthetic}.items():
        cfg.DATASET.SYNTHETIC[key] = value
    return cfg


def relative_files(folder):
    return sorted(osp.relpath(osp.join(d, name), folder) for d, _, names in os.walk(folder) for name in names)


# ---------------------------------------------------------------------------------------------- determinism
def test_same_settings_give_identical_files_and_more_videos_keep_existing_ones(tmp_path):
    first = sv.generate_dataset(str(tmp_path / "a"), SMALL)
    again = sv.generate_dataset(str(tmp_path / "b"), SMALL)
    more = sv.generate_dataset(str(tmp_path / "c"), sv.GeneratorParams(**{**SMALL.as_dict(), "videos_per_class": 3}))
    files = relative_files(first)
    assert files == relative_files(again)
    assert len([f for f in files if f.endswith(".mp4")]) == 4 * 8 * 2
    for name in files:
        assert filecmp.cmp(osp.join(first, name), osp.join(again, name), shallow=False), name
        if name.endswith(".mp4"):  # video i is a function of (seed, domain, class, i) only
            assert filecmp.cmp(osp.join(first, name), osp.join(more, name), shallow=False), name


def test_a_different_seed_index_or_class_gives_a_different_video():
    for domain in sv.DOMAINS:
        video = sv.render_video(0, domain, 0, 0, T, S)
        assert np.array_equal(video, sv.render_video(0, domain, 0, 0, T, S))
        for other in ((1, domain, 0, 0), (0, domain, 0, 1), (0, domain, 1, 0)):
            assert not np.array_equal(video, sv.render_video(*other, T, S)), other


# ---------------------------------------------------------------------------------------------- temporal-order design
def test_classes_are_ordered_pairs_of_shared_perpendicular_moves():
    assert len(set(sv.CLASS_NAMES)) == 8
    for move in sv.MOVES:  # every sub-action appears in 4 classes (twice first, twice second)
        assert sum(move in pair for pair in sv.CLASS_MOVES) == 4
    for first, second in sv.CLASS_MOVES:
        assert np.dot(sv.MOVES[first], sv.MOVES[second]) == 0
    reverse = [sv.reversed_class(label) for label in range(8)]
    assert sv.CLASS_NAMES[reverse[sv.CLASS_NAMES.index("up_then_right")]] == "left_then_down"
    assert sorted(reverse) == list(range(8)) and all(reverse[r] == c and r != c for c, r in enumerate(reverse))


def test_studio_clip_played_backwards_is_a_studio_clip_of_the_reversed_class():
    for label in range(8):
        latents = sv.sample_latents("studio", label, T, S, sv.video_rng(0, "studio", label, 0))
        backwards = sv.time_reversed(latents)
        assert backwards.label == sv.reversed_class(label)
        # The reversed timing is the canonical one, so `backwards` is an ordinary studio sample.
        np.testing.assert_allclose(backwards.progress, sv.CANONICAL_TIMING.progress(T), atol=1e-12)
        gap = (sv.trajectory(backwards) - sv.trajectory(latents)[::-1] + S / 2) % S - S / 2
        np.testing.assert_allclose(gap, 0, atol=1e-9)
        frames = sv.render_clip(latents).astype(int)
        difference = np.abs(sv.render_clip(backwards).astype(int) - frames[::-1])
        assert difference.max() <= 1  # equal up to float rounding before the uint8 cast
        assert np.abs(frames[::-1] - frames).max() > 100  # ...while the clip itself is not symmetric


def test_single_frame_position_is_uniform_whatever_the_class():
    rng = np.random.default_rng(0)
    draws, cells = 1500, 4
    for label in range(8):
        positions = np.stack([sv.trajectory(sv.sample_latents("studio", label, T, 16, rng)) for _ in range(draws)])
        assert positions.min() >= 0 and positions.max() < 16
        for frame in (0, T // 2, T - 1):
            cell = (positions[:, frame] // (16 / cells)).astype(int)
            share = np.bincount(cell[:, 1] * cells + cell[:, 0], minlength=cells * cells) / draws
            assert np.abs(share - 1 / cells ** 2).max() < 0.035, (label, frame, share)


def test_position_is_the_start_translated_by_a_class_offset():
    """Exact form of the uniformity: a frame is the uniform start shifted on the torus, whatever the start."""
    for label in range(8):
        latents = sv.sample_latents("street", label, T, S, np.random.default_rng(label))
        moved = sv.ClipLatents(label, S, (latents.start + 11.3) % S, latents.progress, latents.jitter,
                               latents.appearance)
        shift = (sv.trajectory(moved) - sv.trajectory(latents)) % S
        np.testing.assert_allclose(shift, 11.3, atol=1e-9)


# ---------------------------------------------------------------------------------------------- domain shifts
def sampled_timings(domain, count=200):
    rng = np.random.default_rng(1)
    return [sv.DOMAINS[domain].timing(rng) for _ in range(count)]


def test_domain_timings_shift_from_studio_as_documented():
    studio = sv.CANONICAL_TIMING.progress(T)
    np.testing.assert_allclose(studio, 2 * np.arange(T) / (T - 1))
    assert all(timing == sv.CANONICAL_TIMING for timing in sampled_timings("studio"))
    for timing in sampled_timings("street"):  # early finish, then rest
        progress = timing.progress(T)
        assert 0.55 <= timing.end_time <= 0.75 and progress[0] == 0
        assert 2 / 0.75 <= timing.speed <= 2 / 0.55
        assert np.all(progress[int(np.ceil(0.75 * (T - 1))):] == 2)
    for timing in sampled_timings("sketch"):  # idle delay, slower, second move cut off
        progress = timing.progress(T)
        assert 0.05 <= timing.begin_time <= 0.15 and progress[0] == progress[1] == 0
        assert 0.8 * 2 <= timing.speed <= 0.9 * 2
        assert 1.36 <= progress[-1] <= 1.72
    for timing in sampled_timings("glimpse"):  # first move partly absent
        progress = timing.progress(T)
        assert 0.3 <= progress[0] <= 0.6 and progress[-1] == 2
        assert 0.7 * 2 <= timing.speed <= 0.85 * 2


def test_domain_appearances_shift_from_studio_as_documented():
    rng = np.random.default_rng(2)
    looks = {domain: [spec.appearance(rng, S) for _ in range(20)] for domain, spec in sv.DOMAINS.items()}
    shapes = {domain: {look.shape for look in domain_looks} for domain, domain_looks in looks.items()}
    assert shapes == {"studio": {"square"}, "street": {"disk"}, "sketch": {"ring"}, "glimpse": {"diamond"}}
    for domain, domain_looks in looks.items():
        for look in domain_looks:  # the shared cue: a bright object over a darker background
            background_value = np.percentile(look.background.max(axis=2), 99)  # HSV value: brightest channel
            assert look.colour.max() > background_value + 30, domain
    for look in looks["studio"]:  # plain, dark, near-white object
        assert np.ptp(look.background) == 0 and look.background.mean() < 60 and look.colour.min() > 175
    for look in looks["street"]:  # textured and coloured (saturated object)
        assert look.background.std() > 8 and np.ptp(look.colour) > 60
    for look in looks["sketch"]:  # grainy board, outline only: the ring's centre shows the background
        assert look.background.std() > 3
        centre = sv.ClipLatents(0, S, np.array([S / 2, S / 2]), np.zeros(1), np.zeros((1, 2)), look)
        frame = sv.render_clip(centre)[0].astype(float)
        assert np.abs(frame[S // 2, S // 2] - look.background[S // 2, S // 2]).max() < 1
    for look in looks["glimpse"]:  # gray gradient: colourless, spanning > 50 levels
        assert np.ptp(look.background, axis=2).max() == 0 and np.ptp(look.background) > 50


# ---------------------------------------------------------------------------------------------- files
def test_mp4_decodes_through_decord_to_the_rendered_frames(tmp_path):
    folder = sv.generate_dataset(str(tmp_path), SMALL)
    for domain in sv.DOMAINS:
        path = osp.join(folder, sv.video_relpath(SMALL, domain, 3, 1))
        decoded = decord.VideoReader(path).get_batch(list(range(SMALL.num_frames))).asnumpy()
        rendered = sv.render_video(SMALL.seed, domain, 3, 1, SMALL.num_frames, SMALL.frame_size)
        assert len(decord.VideoReader(path)) == SMALL.num_frames
        difference = np.abs(decoded.astype(int) - rendered.astype(int))
        assert difference.max() <= 2 and difference.mean() < 0.5  # lossless H.264 in RGB: normally exact


def test_frame_folders_hold_the_rendered_frames_and_list_files_name_them(tmp_path):
    params = sv.GeneratorParams(**{**SMALL.as_dict(), "format": "frames"})
    folder = sv.generate_dataset(str(tmp_path), params)
    with open(osp.join(folder, "glimpse.txt")) as f:
        lines = f.read().split("\n")[:-1]
    assert len(lines) == 8 * 2
    relpath, num_frames, label = lines[5].split()
    assert (int(num_frames), int(label)) == (12, 2) and relpath == sv.video_relpath(params, "glimpse", 2, 1)
    stored = np.stack([np.asarray(Image.open(osp.join(folder, relpath, sv.FRAME_TMPL.format(n))))
                       for n in range(1, 13)])
    assert np.array_equal(stored, sv.render_video(0, "glimpse", 2, 1, 12, 20))
    with open(osp.join(folder, sv.MANIFEST)) as f:
        manifest = json.load(f)
    assert manifest["params"] == params.as_dict() and manifest["classes"] == sv.CLASS_NAMES
    assert {domain: info["videos"] for domain, info in manifest["domains"].items()} == dict.fromkeys(sv.DOMAINS, 16)


def test_interrupted_generation_leaves_nothing_and_a_lost_race_keeps_the_winner(tmp_path, monkeypatch):
    def crash(frames, path):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(sv, "write_mp4", crash)
        with pytest.raises(KeyboardInterrupt):
            sv.generate_dataset(str(tmp_path), SMALL)
    assert os.listdir(tmp_path) == []
    winner = sv.generate_dataset(str(tmp_path), SMALL)
    marker = osp.join(winner, "studio.txt")
    os.utime(marker, (0, 0))
    assert sv.generate_dataset(str(tmp_path), SMALL) == winner  # a second writer discards its copy
    assert os.listdir(tmp_path) == [sv.variant_name(SMALL)] and os.stat(marker).st_mtime == 0


def test_invalid_settings_are_rejected():
    for bad in ({"frame_size": 31}, {"frame_size": 24}, {"format": "gif"}, {"num_frames": 4}, {"videos_per_class": 0}):
        with pytest.raises(ValueError, match="DATASET.SYNTHETIC"):
            sv.GeneratorParams(**{**SMALL.as_dict(), **bad}).validate()
    sv.GeneratorParams(**{**SMALL.as_dict(), "frame_size": 24, "format": "frames"}).validate()  # PNGs: any even size


# ---------------------------------------------------------------------------------------------- Dassl dataset
def test_dataset_builds_with_the_70_30_source_split_and_whole_targets(tmp_path, monkeypatch):
    dataset = build_dataset(make_cfg(tmp_path, VIDEOS_PER_CLASS=10))
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (8 * 7, 8 * 3, 3 * 8 * 10)
    assert dataset.classnames == sv.CLASS_NAMES and dataset.num_classes == 8
    assert {item.domain for item in dataset.train_x + dataset.val} == {0}
    assert {item.domain for item in dataset.test} == {0, 1, 2}
    item = dataset.test[-1]
    assert item.impath.endswith(".mp4") and osp.isfile(item.impath) and item.num_frames == 12
    assert item.classname == sv.CLASS_NAMES[item.label] and f"/{item.classname}/" in item.impath
    variant_dir = osp.join(tmp_path, "synthetic_video_dg", "v1_seed0_n10_t12_s20_video")
    assert osp.isfile(osp.join(variant_dir, "splits", "studio_val0.3_seed1.json"))

    def no_generation(*args):
        raise AssertionError("generated again")

    monkeypatch.setattr(sv, "generate_dataset", no_generation)
    again = build_dataset(make_cfg(tmp_path, VIDEOS_PER_CLASS=10))
    assert [item.impath for item in again.val] == [item.impath for item in dataset.val]


def test_frame_folder_dataset_items_carry_the_frame_template(tmp_path):
    dataset = build_dataset(make_cfg(tmp_path, source=("sketch", "street"), target=("studio",), FORMAT="frames"))
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (2 * 8, 2 * 8, 16)
    item = dataset.train_x[0]
    assert osp.isdir(item.impath) and (item.frame_tmpl, item.first_frame) == ("img_{:05d}.png", 1)
    assert osp.isfile(osp.join(item.impath, item.frame_tmpl.format(item.first_frame)))
    assert {item.domain for item in dataset.train_x} == {0, 1}


def test_a_tampered_manifest_is_reported(tmp_path):
    build_dataset(make_cfg(tmp_path))
    manifest_path = osp.join(tmp_path, "synthetic_video_dg", sv.variant_name(SMALL), sv.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["classes"] = manifest["classes"][::-1]
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(ValueError, match="delete"):
        build_dataset(make_cfg(tmp_path))


def test_unknown_domain_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="Valid domains") as error:
        build_dataset(make_cfg(tmp_path, target=("street", "cartoon")))
    assert all(domain in str(error.value) for domain in sv.DOMAINS)


def test_missing_root_names_the_option_to_pass():
    with pytest.raises(DatasetNotFoundError, match="--root"):
        build_dataset(make_cfg(""))


# ---------------------------------------------------------------------------------------------- files for everyone
def test_generated_folders_and_split_files_are_readable_by_everyone(tmp_path):
    old = os.umask(0o022)  # the usual umask: data other users can read
    try:
        dataset = build_dataset(make_cfg(tmp_path))
    finally:
        os.umask(old)
    variant_dir = osp.join(tmp_path, "synthetic_video_dg", sv.variant_name(SMALL))
    assert os.stat(variant_dir).st_mode & 0o777 == 0o755  # mkdtemp alone would give 0o700
    split_file = osp.join(variant_dir, "splits", "studio_val0.3_seed1.json")
    assert os.stat(split_file).st_mode & 0o777 == 0o644
    assert os.stat(dataset.test[0].impath).st_mode & 0o004
    with open(split_file) as f:
        assert "own group" in json.load(f)["grouping"]  # independent generating parameters per clip


def test_a_label_out_of_range_in_a_list_names_the_file(tmp_path):
    build_dataset(make_cfg(tmp_path))
    list_file = osp.join(tmp_path, "synthetic_video_dg", sv.variant_name(SMALL), "street.txt")
    with open(list_file) as f:
        lines = f.readlines()
    path, frames, _ = lines[0].split()
    lines[0] = f"{path} {frames} 8\n"
    with open(list_file, "w") as f:
        f.writelines(lines)
    with pytest.raises(ValueError, match=r"street\.txt: label 8 of .* has only 8 classes\. Delete"):
        build_dataset(make_cfg(tmp_path))


def test_a_root_that_cannot_be_written_gets_advice(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(PermissionError, match=r"Pass --root \(DATASET.ROOT\) a folder you can write to"):
        build_dataset(make_cfg(tmp_path / "file" / "data"))
