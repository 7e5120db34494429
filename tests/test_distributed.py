"""torchrun on CPU: 2 gloo processes x 1 epoch match 1 process at the same global batch, on both engines.

The method is VideoADA (TSN + ADA), so the maximisation runs under data parallelism too. Every random draw of
training is switched off (a frame per segment, full-frame crop, no flip, no dropout, sequential order) and
TRAIN.SYNC_BN gives the processes the global batch's BatchNorm statistics, so the two runs differ only by
floating-point summation order: after one epoch every weight and BN statistic agrees within TOLERANCE (measured
about 1e-6) and the results table is the same. A second torchrun run then resumes from the checkpoint.
"""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.utils.data import DataLoader

from framework.distributed import (average_gradients, convert_sync_batchnorm, gather_shards, shard_loader)
from tests.helpers import ENGINES, REPO, SYNTHETIC_ARGS, read_results, run_train

TOLERANCE = 1e-5  # max |difference| of any weight or BN statistic after one epoch (4 SGD steps)

DETERMINISTIC = [
    "DATASET.SYNTHETIC.VIDEOS_PER_CLASS", "3", "DATASET.SYNTHETIC.NUM_FRAMES", "12",
    "INPUT.NUM_SEGMENTS", "12",  # = frames per video: one frame per segment, no random offset
    "INPUT.MULTISCALE_CROP", "[1.0]", "INPUT.RANDOM_FLIP", "False", "MODEL.BACKBONE.DROPOUT", "0.0",
    "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler", "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.TEST.BATCH_SIZE", "16", "MODEL.BACKBONE.FEATURE_DIM", "16", "TRAIN.PRINT_FREQ", "1",
    "USE_CUDA", "False", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.005", "TRAINER.VIDEOADA.T_MAX", "2",
    "TRAIN.SYNC_BN", "True", "TEST.FIGURES", "False",
    "TRAIN.CHANNELS_LAST", "False",  # with channels_last (the CPU setting) batch 4 vs 8 measured 1e-4 apart
]
GLOBAL_BATCH = 8
WORKER_DEADLINE_S = 300  # the 2-worker test takes about 10 s; a stuck worker fails the test, not CI


def method_args(data_root: str, out: str):
    return ["--root", data_root, *SYNTHETIC_ARGS, "--trainer", "VideoADA", "--config-file",
            "configs/trainers/VideoADA/smallcnn_cpu.yaml", "--output-dir", out, "--seed", "1"]


def run_torchrun(nproc: int, args, engine: str) -> subprocess.CompletedProcess:
    """torchrun --standalone --nproc_per_node nproc train.py <args> (torchrun is torch.distributed.run)."""
    env = dict(os.environ, VIDEODG_ENGINE=engine, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "train.py", *args]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def weights(out: str, epoch: int = 1):
    path = osp.join(out, "model", f"model.pth.tar-{epoch}")
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def single_process_run(data_root, tmp_path_factory):
    """The reference: one process, batch 8 (the engines agree exactly here, so one run serves both)."""
    out = str(tmp_path_factory.mktemp("single"))
    run_train([*method_args(data_root, out), *DETERMINISTIC, "OPTIM.MAX_EPOCH", "1",
               "DATALOADER.TRAIN_X.BATCH_SIZE", str(GLOBAL_BATCH)])
    return out


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_two_gloo_processes_match_one_process_and_resume(engine, data_root, single_process_run, tmp_path):
    out = str(tmp_path / "ddp")
    args = [*method_args(data_root, out), *DETERMINISTIC, "DATALOADER.TRAIN_X.BATCH_SIZE", str(GLOBAL_BATCH // 2)]
    proc = run_torchrun(2, [*args, "OPTIM.MAX_EPOCH", "1"], engine)

    # rank 0 alone writes: one log, one set of checkpoints, one tensorboard file, one results table
    assert sorted(os.listdir(out)) == ["config.yaml", "log.txt", "model", "results.csv", "results.json",
                                       "tensorboard"]
    assert sorted(os.listdir(osp.join(out, "model"))) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1"]
    assert len(os.listdir(osp.join(out, "tensorboard"))) == 1
    log = open(osp.join(out, "log.txt")).read()
    assert log.count(f"Engine: {engine}") == 1 and proc.stdout.count("| split") == 1
    assert "Data parallel over 2 processes: 4 clips per process and step, global batch 8; 2 steps per epoch" in log
    assert "TRAIN.SYNC_BN: 3 BatchNorm layers" in log and " max_loss_last_hidden " in log

    # the same model and the same table as one process at batch 8; evaluation counts every clip once
    reference, trained = weights(single_process_run), weights(out)
    assert reference.keys() == trained.keys()
    difference = max((reference[k].double() - trained[k].double()).abs().max().item() for k in reference)
    assert difference <= TOLERANCE, f"2 processes differ from 1 by {difference:.3g} (> {TOLERANCE})"
    rows, expected = read_results(out), read_results(single_process_run)
    assert rows[("target", "pooled")]["n"] == 72 and rows[("source val", "studio")]["n"] == 8
    for key, row in expected.items():
        assert rows[key]["n"] == row["n"] and rows[key]["accuracy"] == pytest.approx(row["accuracy"])

    if engine != "builtin":
        return  # resume is the same code on both engines (CheckpointMixin, DataParallelMixin); once is enough
    proc = run_torchrun(2, [*args, "OPTIM.MAX_EPOCH", "2"], engine)
    assert "Resuming after epoch 1" in proc.stdout and "epoch [2/2]" in proc.stdout and "epoch [1/2]" not in proc.stdout
    assert "each rank reseeds" not in proc.stdout  # every rank's own random state came back
    assert len(glob.glob(osp.join(out, "log.txt-*"))) == 1  # rank 0's log of the resumed run, and no other
    assert sorted(os.listdir(osp.join(out, "model"))) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1",
                                                          "model.pth.tar-2"]


# ----------------------------------------------------------------------------- the pieces, in 2 gloo processes
def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5),
                         nn.Linear(5, 5))


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 8, 8, generator=g) * 3 + 1, torch.randint(5, (8, ), generator=g)


def _worker(rank: int, world: int, port: int, results) -> None:
    # One intra-op thread per worker: two workers with 2 OpenMP threads each on a 2-core CI machine were seen to
    # spin in a convolution's backward for the whole CI limit (what is tested here is the collectives, not threads).
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # evaluation shards: 7 items over 2 ranks, no padding; item 4 is dropped (an unreadable clip)
        loader = shard_loader(DataLoader(list(range(7)), batch_size=2), shuffle=False, seed=0, train=False)
        mine = np.array([i for batch in loader for i in batch.tolist() if i != 4])
        values, = gather_shards([mine * 10], loader, index=mine)
        # global-batch BatchNorm and averaged gradients; the last layer gets a gradient on rank 0 only
        net = _small_net()
        convert_sync_batchnorm(net)
        x, y = _batch()
        features = net[:5](x[rank::world])
        logits = net[5](features) if rank == 0 else features
        loss = nn.functional.cross_entropy(logits, y[rank::world]) * (2 if rank else 1)
        loss.backward()
        average_gradients(net.parameters())
        results[rank] = (mine.tolist(), values.tolist(),
                         {n: p.grad.numpy().copy() for n, p in net.named_parameters()},
                         {n: b.numpy().copy() for n, b in net.named_buffers()})
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_shards_gradients_and_sync_bn_in_two_gloo_processes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Manager().dict()
    workers = mp.start_processes(_worker, args=(2, port, results), nprocs=2, start_method="spawn", join=False)
    deadline = time.monotonic() + WORKER_DEADLINE_S
    while not workers.join(timeout=5):  # True once both exited; raises when one failed
        if time.monotonic() > deadline:
            for process in workers.processes:
                process.kill()
            pytest.fail(f"the 2 gloo workers did not finish within {WORKER_DEADLINE_S} s (killed)")
    (mine0, values, grads, buffers), (mine1, _, _, _) = results[0], results[1]
    assert mine0 == [0, 2, 6] and mine1 == [1, 3, 5]  # every item on one rank, none twice
    assert values == [0, 10, 20, 30, 50, 60]  # all ranks' items, in dataset order

    # the same quantities in one process over the whole batch
    net = _small_net()
    x, y = _batch()
    features = net[:5](x)
    loss0 = nn.functional.cross_entropy(net[5](features[0::2]), y[0::2])
    loss1 = nn.functional.cross_entropy(features[1::2], y[1::2]) * 2
    ((loss0 + loss1) / 2).backward()
    for name, p in net.named_parameters():
        assert np.allclose(grads[name], p.grad.numpy(), atol=1e-6), name
    for name, b in net.named_buffers():
        assert np.allclose(buffers[name], b.numpy(), atol=1e-6), name
