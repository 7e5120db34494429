"""Datasets, samplers, loaders and the DataManager of the built-in engine (Dassl's data API, own code).

Only what a DG plugin needs: labelled items (Datum), a dataset holding train_x / val / test, the sequential,
random and domain-balanced samplers, and a DataManager that takes the transforms (and the dataset wrapper)
from its caller; the built-in engine has no image transforms of its own.
"""
import os.path as osp
import random
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from .registry import Registry, check_availability

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    """Instantiate the dataset registered under cfg.DATASET.NAME."""
    name = cfg.DATASET.NAME
    check_availability(name, DATASET_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading dataset: {name}")
    dataset_class = DATASET_REGISTRY.get(name)
    return dataset_class(cfg)


def _read_only(field: str, doc: str) -> property:
    return property(lambda self: getattr(self, field), doc=doc)


class Datum:
    """One labelled item. As in Dassl, `impath` must name an existing file (subclasses may relax this and set
    the same private fields themselves, as VideoDatum does for frame folders)."""

    impath = _read_only("_impath", "path of the item")
    label = _read_only("_label", "class index")
    domain = _read_only("_domain", "domain index")
    classname = _read_only("_classname", "class name")

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        if not isinstance(impath, str) or not osp.isfile(impath):
            raise FileNotFoundError(f"Datum needs the path of an existing file, got {impath!r}; a clip stored as a "
                                    "folder of frames is a VideoDatum")
        self._impath, self._label, self._domain, self._classname = impath, label, domain, classname


def group_by(items: Sequence, attribute: str) -> Dict[Any, list]:
    """Items grouped by one attribute (label or domain), groups in order of first appearance."""
    groups = defaultdict(list)
    for item in items:
        groups[getattr(item, attribute)].append(item)
    return groups


class DatasetBase:
    """The item lists of a benchmark. Class count and names come from train_x (Dassl's rule)."""

    dataset_dir = ""
    domains: List[str] = []

    train_x = _read_only("_train_x", "labelled training items")
    train_u = _read_only("_train_u", "unlabelled training items (None in DG)")
    val = _read_only("_val", "validation items")
    test = _read_only("_test", "test items")

    lab2cname = _read_only("_lab2cname", "class index -> class name")
    classnames = _read_only("_classnames", "class names in index order")
    num_classes = _read_only("_num_classes", "number of classes")

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        if not train_x:
            raise ValueError(f"{type(self).__name__} found no training items (train_x is empty), and the class "
                             "count and names come from them: check DATASET.ROOT and DATASET.SOURCE_DOMAINS")
        self._train_x, self._train_u, self._val, self._test = train_x, train_u, val, test
        # Dassl's rule: the classes are the ones the training items name. A dataset with a class list of its own
        # overwrites these private fields afterwards, as it would on Dassl (datasets/base.py use_class_list).
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @staticmethod
    def get_num_classes(data_source) -> int:
        return 1 + max(item.label for item in data_source)

    @staticmethod
    def get_lab2cname(data_source) -> Tuple[Dict[int, str], List[str]]:
        names = {item.label: item.classname for item in data_source}
        return names, [names[k] for k in sorted(names)]

    def check_input_domains(self, source_domains, target_domains) -> None:
        for role, chosen in (("source", source_domains), ("target", target_domains)):
            if not chosen:
                raise ValueError(f"no {role} domains given: pass --{role}-domains")
            self.is_input_domain_valid(chosen)

    def is_input_domain_valid(self, input_domains) -> None:
        unknown = sorted(set(input_domains) - set(self.domains))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no domain {', '.join(unknown)}; its domains are "
                             f"{', '.join(self.domains)}")

    @staticmethod
    def split_dataset_by_label(data_source) -> Dict[int, list]:
        return group_by(data_source, "label")

    @staticmethod
    def split_dataset_by_domain(data_source) -> Dict[int, list]:
        return group_by(data_source, "domain")


# --------------------------------------------------------------------------- samplers
class RandomDomainSampler(Sampler):
    """Batches of `n_domain` domains x (batch_size // n_domain) items each, the domains drawn at random.

    An epoch has len(data) // batch_size batches. Each domain's items are drawn without replacement from a
    shuffled pool that is refilled when it runs dry, so small domains are revisited rather than ending the
    epoch early."""

    def __init__(self, data_source, batch_size: int, n_domain: int):
        self.pools: Dict[int, List[int]] = defaultdict(list)
        for index, item in enumerate(data_source):
            self.pools[item.domain].append(index)
        self.n_domain = n_domain if n_domain and n_domain > 0 else len(self.pools)
        if batch_size % self.n_domain:
            raise ValueError(f"batch size {batch_size} is not divisible by {self.n_domain} domains per batch")
        self.per_domain = batch_size // self.n_domain
        self.num_batches = len(data_source) // batch_size

    def __iter__(self):
        queues = {d: [] for d in self.pools}
        for _ in range(self.num_batches):
            for d in random.sample(list(self.pools), self.n_domain):
                for _ in range(self.per_domain):
                    if not queues[d]:
                        queues[d] = random.sample(self.pools[d], len(self.pools[d]))
                    yield queues[d].pop()

    def __len__(self) -> int:
        return self.num_batches * self.n_domain * self.per_domain


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16):
    makers = {
        "SequentialSampler": lambda: SequentialSampler(data_source),
        "RandomSampler": lambda: RandomSampler(data_source),
        "RandomDomainSampler": lambda: RandomDomainSampler(data_source, batch_size, n_domain),
    }
    if sampler_type not in makers:
        raise ValueError(f"Unknown sampler type: {sampler_type} (the built-in engine has {sorted(makers)})")
    return makers[sampler_type]()


# --------------------------------------------------------------------------- loaders
class DatasetWrapper(Dataset):
    """Image items for a DataLoader: the item read with PIL as RGB and passed through `transform`, under the
    batch keys Dassl's wrapper uses (img, label, domain, impath, index)."""

    def __init__(self, cfg, data_source, transform=None, is_train=False):
        if transform is None:
            raise ValueError("The built-in engine's image wrapper needs a transform")
        self.cfg, self.data_source, self.transform, self.is_train = cfg, data_source, transform, is_train

    def __len__(self) -> int:
        return len(self.data_source)

    def _picture(self, path: str):
        with Image.open(path) as image:
            return self.transform(image.convert("RGB"))

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        item = self.data_source[idx]
        batch_fields = {key: getattr(item, key) for key in ("label", "domain", "impath")}
        return dict(batch_fields, index=idx, img=self._picture(item.impath))


def build_data_loader(cfg, sampler_type="SequentialSampler", data_source=None, batch_size=64, n_domain=0, n_ins=2,
                      tfm=None, is_train=True, dataset_wrapper=None):
    """A DataLoader over data_source, wrapped by `dataset_wrapper` (default: the image DatasetWrapper)."""
    sampling = {"batch_size": batch_size, "n_domain": n_domain, "n_ins": n_ins}
    loader = DataLoader(
        (dataset_wrapper or DatasetWrapper)(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size,
        sampler=build_sampler(sampler_type, cfg, data_source, **sampling),
        # a training epoch leaves out a last, smaller batch, unless all the data is smaller than one batch
        drop_last=is_train and batch_size <= len(data_source),
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA)  # pinned host memory only feeds a GPU
    if not len(loader):
        raise ValueError(f"a data loader over {len(data_source)} items with batch size {batch_size} is empty")
    return loader


class DataManager:
    """The dataset of cfg.DATASET.NAME and its loaders: train_x (labelled source), val and test."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        if custom_tfm_train is None or custom_tfm_test is None:
            raise ValueError("The built-in engine has no image transforms (INPUT.TRANSFORMS); "
                             "pass custom_tfm_train/custom_tfm_test, as the video trainers do")
        self.dataset = build_dataset(cfg)
        train_cfg, eval_cfg = cfg.DATALOADER.TRAIN_X, cfg.DATALOADER.TEST

        def evaluation_loader(items) -> Optional[DataLoader]:
            if not items:
                return None
            return build_data_loader(cfg, eval_cfg.SAMPLER, items, eval_cfg.BATCH_SIZE, tfm=custom_tfm_test,
                                     is_train=False, dataset_wrapper=dataset_wrapper)

        self.train_loader_x = build_data_loader(
            cfg, train_cfg.SAMPLER, self.dataset.train_x, train_cfg.BATCH_SIZE, n_domain=train_cfg.N_DOMAIN,
            n_ins=train_cfg.N_INS, tfm=custom_tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)
        self.train_loader_u = None  # DG has no unlabelled data
        self.val_loader = evaluation_loader(self.dataset.val)
        self.test_loader = evaluation_loader(self.dataset.test)
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self.dataset.lab2cname

    def show_dataset_summary(self, cfg) -> None:
        data = self.dataset
        rows = [("Dataset", cfg.DATASET.NAME),
                ("Source", list(cfg.DATASET.SOURCE_DOMAINS) or None),
                ("Target", list(cfg.DATASET.TARGET_DOMAINS) or None),
                ("# classes", f"{self.num_classes:,}"),
                ("# train_x", f"{len(data.train_x):,}"),
                ("# val", f"{len(data.val):,}" if data.val else None),
                ("# test", f"{len(data.test):,}")]
        print(tabulate([row for row in rows if row[1] is not None]))
