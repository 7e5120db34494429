"""Every shipped YAML merges into the project's config; names in them exist in the registries."""
import glob
import os.path as osp

import pytest

import train  # noqa: F401  (registers datasets, models and trainers)
from defaults import extend_cfg
from framework import BACKBONE_REGISTRY, DATASET_REGISTRY, HEAD_REGISTRY, build_dataset, get_cfg_default
from tests.helpers import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, "configs", "datasets", "*.yaml")) +
                 glob.glob(osp.join(REPO, "configs", "trainers", "*", "*.yaml")))


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_merges_and_names_registered_components(path):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file(path)  # unknown keys or wrong value types raise here
    if cfg.DATASET.NAME:
        assert cfg.DATASET.NAME in DATASET_REGISTRY.registered_names()
    if cfg.MODEL.BACKBONE.NAME:
        assert cfg.MODEL.BACKBONE.NAME in BACKBONE_REGISTRY.registered_names()
    if cfg.MODEL.HEAD.NAME:
        assert cfg.MODEL.HEAD.NAME in HEAD_REGISTRY.registered_names()


def test_unknown_dataset_lists_the_registered_ones():
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "UCF_HMDB"
    with pytest.raises(ValueError) as e:
        build_dataset(cfg)
    assert "UCFHMDB" in str(e.value) and "SyntheticVideoDG" in str(e.value)
