"""Datasets, samplers, loaders and DataManager of the built-in engine (Dassl's data API)."""
import copy
import random
from collections import defaultdict
from typing import Any, Dict, List, Tuple

import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import RandomSampler, Sampler, SequentialSampler

from .registry import Registry, check_availability
from .utils import check_isfile

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    avai = DATASET_REGISTRY.registered_names()
    check_availability(cfg.DATASET.NAME, avai)
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class Datum:
    """One labelled item. `impath` must be an existing file (Dassl's rule)."""

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        assert isinstance(impath, str)
        assert check_isfile(impath)
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname


class DatasetBase:
    """Holds train_x / train_u / val / test lists; class count and names come from train_x."""

    dataset_dir = ""
    domains: List[str] = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> List[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source) -> int:
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source) -> Tuple[Dict[int, str], List[str]]:
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping.keys())
        return mapping, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains, target_domains) -> None:
        assert len(source_domains) > 0, "source_domains (list) is empty"
        assert len(target_domains) > 0, "target_domains (list) is empty"
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains) -> None:
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    @staticmethod
    def split_dataset_by_label(data_source) -> Dict[int, list]:
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    @staticmethod
    def split_dataset_by_domain(data_source) -> Dict[int, list]:
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output


# --------------------------------------------------------------------------- samplers
class RandomDomainSampler(Sampler):
    """Each batch: n_domain random domains x (batch_size // n_domain) items, as contiguous blocks."""

    def __init__(self, data_source, batch_size: int, n_domain: int):
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = list(self.domain_dict.keys())
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        assert batch_size % n_domain == 0, "batch_size must be divisible by the number of domains per batch"
        self.n_img_per_domain = batch_size // n_domain
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        pools = copy.deepcopy(self.domain_dict)
        final_idxs = []
        while True:
            selected = random.sample(self.domains, self.n_domain)
            if any(len(pools[d]) < self.n_img_per_domain for d in selected):
                break
            for d in selected:
                idxs = random.sample(pools[d], self.n_img_per_domain)
                final_idxs.extend(idxs)
                for idx in idxs:
                    pools[d].remove(idx)
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    raise ValueError(f"Unknown sampler type: {sampler_type} (the built-in engine has RandomSampler, "
                     "SequentialSampler and RandomDomainSampler)")


# --------------------------------------------------------------------------- loaders
class DatasetWrapper(TorchDataset):
    """Image wrapper: reads item.impath with PIL and applies `transform`."""

    def __init__(self, cfg, data_source, transform=None, is_train=False):
        if transform is None:
            raise ValueError("The built-in engine's image wrapper needs a transform")
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        item = self.data_source[idx]
        img = Image.open(item.impath).convert("RGB")
        return {
            "label": item.label,
            "domain": item.domain,
            "impath": item.impath,
            "index": idx,
            "img": self.transform(img),
        }


def build_data_loader(
    cfg,
    sampler_type="SequentialSampler",
    data_source=None,
    batch_size=64,
    n_domain=0,
    n_ins=2,
    tfm=None,
    is_train=True,
    dataset_wrapper=None,
):
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=n_domain, n_ins=n_ins)
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    loader = torch.utils.data.DataLoader(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=(torch.cuda.is_available() and cfg.USE_CUDA),
    )
    assert len(loader) > 0
    return loader


class DataManager:
    """Builds the dataset and its train_x / val / test loaders from cfg."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)
        if custom_tfm_train is None or custom_tfm_test is None:
            raise ValueError("The built-in engine has no image transforms (INPUT.TRANSFORMS); "
                             "pass custom_tfm_train/custom_tfm_test, as the video trainers do")
        print("* Using custom transform for training")
        print("* Using custom transform for testing")
        x_cfg, test_cfg = cfg.DATALOADER.TRAIN_X, cfg.DATALOADER.TEST
        self.train_loader_x = build_data_loader(
            cfg, sampler_type=x_cfg.SAMPLER, data_source=dataset.train_x, batch_size=x_cfg.BATCH_SIZE,
            n_domain=x_cfg.N_DOMAIN, n_ins=x_cfg.N_INS, tfm=custom_tfm_train, is_train=True,
            dataset_wrapper=dataset_wrapper)
        self.train_loader_u = None  # DG needs no unlabelled loader
        self.val_loader = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, sampler_type=test_cfg.SAMPLER, data_source=dataset.val, batch_size=test_cfg.BATCH_SIZE,
                tfm=custom_tfm_test, is_train=False, dataset_wrapper=dataset_wrapper)
        self.test_loader = build_data_loader(
            cfg, sampler_type=test_cfg.SAMPLER, data_source=dataset.test, batch_size=test_cfg.BATCH_SIZE,
            tfm=custom_tfm_test, is_train=False, dataset_wrapper=dataset_wrapper)
        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    def show_dataset_summary(self, cfg) -> None:
        rows = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            rows.append(["Source", list(cfg.DATASET.SOURCE_DOMAINS)])
        if cfg.DATASET.TARGET_DOMAINS:
            rows.append(["Target", list(cfg.DATASET.TARGET_DOMAINS)])
        rows.append(["# classes", f"{self.num_classes:,}"])
        rows.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.val:
            rows.append(["# val", f"{len(self.dataset.val):,}"])
        rows.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(rows))
