"""The DG trainers written here (VideoCrossGrad, VideoDDAIG, VideoDAELDG, VideoDomainMix, VideoRSC) and
MixStyle, through train.py on both engines (real Dassl where it is installed: the dassl marker), plus the early
refusals: too few source domains, a missing sampler, a Dassl-only trainer on the built-in engine, an image
trainer on video (real Dassl, in this process).
"""
import json
import os
import os.path as osp
import re

import pytest
import torch

import train
from framework import ENGINE, EVALUATION_HEADER
from tests.helpers import ENGINES, TINY_SYNTHETIC, train_on

ONE_SOURCE = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio",
              "--target-domains", "sketch"]
TWO_SOURCES = ["--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains", "studio", "street",
               "--target-domains", "sketch"]


def train_argv(data_root, out, trainer, sources, config, *opts) -> list:
    return ["--root", data_root, *sources, "--trainer", trainer, "--config-file", config, "--output-dir", out,
            "--seed", "1", *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1", *opts]


def train_args(data_root, out, trainer, sources, config, *opts):
    return train.build_parser().parse_args(train_argv(data_root, out, trainer, sources, config, *opts))


RUNS = {  # id: (trainer, sources, config, options, logged loss terms, networks saved)
    "CrossGrad": ("VideoCrossGrad", TWO_SOURCES, "VideoCrossGrad", [], ["loss_f", "loss_d"], ["D", "F"]),
    "DDAIG": ("VideoDDAIG", TWO_SOURCES, "VideoDDAIG", [], ["loss_g", "loss_f", "loss_d"], ["D", "F", "G"]),
    "DAELDG": ("VideoDAELDG", TWO_SOURCES, "VideoDAELDG", [], ["loss_x", "loss_cr"], ["E", "F"]),
    "DomainMix-crossdomain": ("VideoDomainMix", TWO_SOURCES, "VideoDomainMix", [], ["loss"], ["model"]),
    "DomainMix-random-1src": ("VideoDomainMix", ONE_SOURCE, "VideoDomainMix",
                              ["TRAINER.VIDEODOMAINMIX.TYPE", "random"], ["loss"], ["model"]),
    "RSC-apn_head-1src": ("VideoRSC", ONE_SOURCE, "VideoRSC", ["MODEL.HEAD.NAME", "apn_pyramid"], ["loss", "muted"],
                          ["model"]),
    "MixStyle-crossdomain": ("VideoVanilla", TWO_SOURCES, "VideoVanilla/mixstyle_smallcnn_cpu",
                             ["MODEL.BACKBONE.MIXSTYLE.MIX", "crossdomain", "MODEL.BACKBONE.MIXSTYLE.P", "1.0",
                              "DATALOADER.TRAIN_X.SAMPLER", "RandomDomainSampler"], ["loss"], ["model"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("run", list(RUNS))
def test_method_trains_one_epoch_and_reports(run, engine, data_root, tmp_path):
    trainer, sources, config, opts, loss_keys, networks = RUNS[run]
    config = f"configs/trainers/{config}.yaml" if "/" in config else f"configs/trainers/{config}/smallcnn_cpu.yaml"
    out = str(tmp_path / "out")
    train_on(engine, train_argv(data_root, out, trainer, sources, config, *opts))
    log = open(osp.join(out, "log.txt")).read()
    assert f"Engine: {engine}" in log
    for key in loss_keys:
        assert f" {key} " in log
    assert sorted(n for n in os.listdir(out) if osp.isdir(osp.join(out, n)) and n != "tensorboard") == networks
    with open(osp.join(out, "results.json")) as f:
        rows = {(r["split"], r["domain"]): r for r in json.load(f)}
    assert rows[("target", "sketch")]["n"] == 24
    assert rows[("source val", "studio")]["n"] == 8
    # the table reports the deployed model: its target row agrees with the engine's own evaluator on the test set
    test_log = log.split(EVALUATION_HEADER.format("test"))[-1]
    correct, total = (int(re.search(rf"\* {key}: (\d+)", test_log).group(1)) for key in ("correct", "total"))
    assert rows[("target", "sketch")]["n"] == total
    assert rows[("target", "sketch")]["accuracy"] == pytest.approx(100 * correct / total)


@pytest.mark.parametrize("trainer,opts", [("VideoCrossGrad", []), ("VideoDDAIG", []), ("VideoDAELDG", []),
                                          ("VideoDomainMix", [])])
def test_a_single_source_stops_before_anything_is_written(trainer, opts, data_root, tmp_path):
    out = tmp_path / "out"
    args = train_args(data_root, str(out), trainer, ONE_SOURCE, f"configs/trainers/{trainer}/smallcnn_cpu.yaml", *opts)
    with pytest.raises(ValueError, match=f"{trainer} needs at least 2 source domains.*has 1: \\['studio'\\]") as e:
        train.main(args)
    assert not out.exists()
    offered = str(e.value).split("runs on one source domain: ")[1].rstrip(".").split(", ")
    # from each registered trainer's requirements() (a test may have registered one more, e.g. the README's)
    assert {"APN", "VideoADA", "VideoRSC", "VideoVanilla"} <= set(offered)
    assert not {"VideoCrossGrad", "VideoDDAIG", "VideoDAELDG", "VideoDomainMix"} & set(offered)


def test_a_method_without_its_sampler_stops_before_anything_is_written(data_root, tmp_path):
    out = tmp_path / "out"
    args = train_args(data_root, str(out), "VideoDAELDG", TWO_SOURCES, "configs/trainers/VideoDAELDG/smallcnn_cpu.yaml",
                      "DATALOADER.TRAIN_X.SAMPLER", "RandomSampler")
    with pytest.raises(ValueError, match="VideoDAELDG needs DATALOADER.TRAIN_X.SAMPLER RandomDomainSampler .one "
                                         "expert per source domain.*the run has RandomSampler"):
        train.main(args)
    assert not out.exists()


@pytest.mark.skipif(ENGINE != "builtin", reason="checks the built-in engine in this process")
def test_a_dassl_only_trainer_on_the_builtin_engine_stops_before_anything_is_written(data_root, tmp_path):
    out = tmp_path / "out"
    args = train_args(data_root, str(out), "DasslCrossGrad", TWO_SOURCES,
                      "configs/trainers/DasslCrossGrad/smallcnn_cpu.yaml")
    with pytest.raises(ValueError, match="needs real Dassl.*use this project's \"VideoCrossGrad\""):
        train.main(args)
    assert not out.exists()


@pytest.mark.dassl
@pytest.mark.skipif(ENGINE != "dassl", reason="checks real Dassl in this process: run under VIDEODG_ENGINE=dassl")
@pytest.mark.parametrize("trainer,sources,config,message", [
    ("Vanilla", "one", "VideoVanilla", "\"Vanilla\" is one of Dassl's image trainers"),
    ("CrossGrad", "two", "VideoCrossGrad", "\"CrossGrad\" is one of Dassl's image trainers.*Use VideoCrossGrad "
     "\\(this project's CrossGrad\\) or DasslCrossGrad \\(Dassl's CrossGrad on clips\\)"),
])
def test_an_image_trainer_on_video_stops_before_anything_is_written(trainer, sources, config, message, data_root,
                                                                     tmp_path):
    out = tmp_path / "out"  # Dassl's image trainer on a video dataset used to die in a loader worker on an .mp4
    args = train_args(data_root, str(out), trainer, ONE_SOURCE if sources == "one" else TWO_SOURCES,
                      f"configs/trainers/{config}/smallcnn_cpu.yaml")
    with pytest.raises(ValueError, match=message):
        train.main(args)
    assert not out.exists()


def test_mixstyle_mixes_statistics_consistently_within_a_clip():
    from models.backbones.frame_encoders import ClipMixStyle, frame_smallcnn

    torch.manual_seed(0)
    B, M, C = 4, 3, 5
    mixstyle = ClipMixStyle(p=1.0, alpha=0.3).train()
    mixstyle.clip_length = M
    x = torch.randn(B * M, C, 6, 6) * torch.rand(B * M, C, 1, 1) * 3 + torch.randn(B * M, C, 1, 1) * 2
    y = mixstyle(x)
    mu_x = x.mean(dim=(2, 3)).view(B, M, C)
    mu_y = y.mean(dim=(2, 3)).view(B, M, C)
    for b in range(B):  # one partner clip and one weight explain the means of every frame and channel of clip b
        fits = []
        for j in range(B):
            diff = mu_x[b] - mu_x[j]
            lam = ((mu_y[b] - mu_x[j]) * diff).sum() / diff.pow(2).sum() if j != b else torch.tensor(1.0)
            fits.append((mu_y[b] - (lam * mu_x[b] + (1 - lam) * mu_x[j])).abs().max().item())
        assert min(fits) < 1e-4
    assert torch.equal(mixstyle.eval()(x), x)

    encoder = frame_smallcnn(feature_dim=8, dropout=0.0)
    keys = list(encoder.state_dict())
    encoder.add_mixstyle(["conv1", "conv2"], p=1.0)
    assert list(encoder.state_dict()) == keys  # checkpoints stay compatible
    clips = torch.randn(2, M, 3, 16, 16)
    encoder.eval()
    plain = encoder(clips)
    encoder.train()
    torch.manual_seed(1)
    assert not torch.allclose(encoder(clips), plain)
    with pytest.raises(ValueError, match='no stage "layer9"'):
        encoder.add_mixstyle(["layer9"])


def test_crossdomain_partners_come_from_other_domains():
    from trainers.domainmix import cross_domain_partners

    domain = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    for _ in range(5):
        partner = cross_domain_partners(domain)
        assert (domain[partner] != domain).all()
    assert torch.equal(cross_domain_partners(torch.zeros(3, dtype=torch.long)), torch.arange(3))


def test_rsc_mutes_the_dominant_features_of_the_challenged_clips_only():
    from models.video_net import VideoNet
    from trainers.rsc import challenge_mask

    cfg = train.default_cfg()
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.HEAD.NAME = "frame_smallcnn", "tsn"
    cfg.MODEL.BACKBONE.FEATURE_DIM, cfg.INPUT.NUM_SEGMENTS = 12, 2
    torch.manual_seed(0)
    net = VideoNet(cfg, cfg.MODEL, num_classes=4)
    frames = torch.randn(6, 2, 12)
    mask = challenge_mask(net, frames, torch.tensor([0, 1, 2, 3, 0, 1]), drop=0.25, batch=0.5)
    muted_per_clip = (mask == 0).flatten(1).sum(1)
    assert sorted(muted_per_clip.tolist()) == [0, 0, 0, 6, 6, 6]  # 3 of 6 clips, 3 of 12 dims in each of 2 frames
