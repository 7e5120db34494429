"""Image DG benchmarks as clips of one frame (M = 1): PACS, Digits-DG and Office-Home-DG in Dassl's layouts.

Each image is a VideoDatum read as a one-frame clip, so every video DG trainer here runs on them unchanged
(with INPUT.NUM_SEGMENTS 1 a batch is (B, 1, C, H, W)); their published image numbers check this project's DG
baselines. The folders, domain names and splits are Dassl's (dassl/data/datasets/dg/), so a DATASET.ROOT made
for Dassl serves both; `python tools/download.py pacs --root DIR` fetches them from the Google Drive files
Dassl uses. As in Dassl, a source domain trains and validates on the release's own split (PACS: the
*_train_kfold / *_crossval_kfold lists; Digits-DG and Office-Home-DG: the train/ and val/ folders), and a
target domain is tested on both parts together; DATASET.VAL_RATIO does not apply.
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

from framework import DATASET_REGISTRY
from video.datum import IMAGE_EXTENSIONS, VideoDatum
from video.listfile import read_list_lines

from .base import DatasetNotFoundError, VideoDGDataset


def download_hint(name: str) -> str:
    return (f"Download it with `python tools/download.py {name} --root <DATASET.ROOT>` (the Google Drive file "
            "Dassl uses), or point DATASET.ROOT at the folder Dassl downloaded it to.")


class ImageDGDataset(VideoDGDataset):
    default_protocol = "lodo"  # image DG is reported leave-one-domain-out, as Dassl does
    """A release with its own train/val split per domain; subclasses say where the images of a split are."""

    grouping = "the release's own train/val split (not made here)"

    def prepare(self) -> None:
        super().prepare()
        self.classes = self.find_classes()

    def class_names(self) -> List[str]:
        return self.classes

    def find_classes(self) -> List[str]:
        raise NotImplementedError

    def split_images(self, domain: str, split: str) -> List[Tuple[str, int]]:
        """(absolute image path, label) of the `split` ("train" or "val") part of a domain."""
        raise NotImplementedError

    def items(self, domain: str, split: str, domain_label: int) -> List[VideoDatum]:
        images = self.split_images(domain, split)
        if not images:
            raise DatasetNotFoundError(f'Domain "{domain}" has no {split} images under "{self.dataset_dir}". '
                                       f"{self.prepare_hint}")
        return [VideoDatum(path, label=label, domain=domain_label, classname=self.classes[label])
                for path, label in images]

    def source_items(self, domain: str, domain_label: int) -> Tuple[List[VideoDatum], List[VideoDatum]]:
        train, val = (self.items(domain, split, domain_label) for split in ("train", "val"))
        print(f"The {domain} train/val split is the release's ({len(val)} of {len(train) + len(val)} images in "
              "val; DATASET.VAL_RATIO does not apply)")
        return train, val

    def target_items(self, domain: str, domain_label: int) -> List[VideoDatum]:
        return [item for split in ("train", "val") for item in self.items(domain, split, domain_label)]

    def read_domain(self, domain: str, domain_label: int) -> List[VideoDatum]:
        return self.target_items(domain, domain_label)


class FolderSplitDG(ImageDGDataset):
    """<domain>/{train,val}/<class folder>/<image>: the layout of Digits-DG and Office-Home-DG. The classes are
    the class folders, sorted (Dassl's labels); a domain or split without one of them is reported."""

    def find_classes(self) -> List[str]:
        found: Dict[str, List[str]] = {}
        for domain in self.domains:
            for split in ("train", "val"):
                folder = osp.join(self.dataset_dir, domain, split)
                if osp.isdir(folder):
                    found[f"{domain}/{split}"] = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        if not found:
            raise DatasetNotFoundError(f'"{self.dataset_dir}" holds no <domain>/train/<class>/ folders (domains '
                                       f"{self.domains}). {self.prepare_hint}")
        classes = sorted({name for names in found.values() for name in names})
        incomplete = [f"{part} lacks {sorted(set(classes) - set(names))}" for part, names in found.items()
                      if set(names) != set(classes)]
        if incomplete:
            raise DatasetNotFoundError(f'"{self.dataset_dir}" is incomplete: ' + "; ".join(incomplete[:5]) +
                                       f". Labels follow the sorted class folders, so every part needs all of them. "
                                       f"{self.prepare_hint}")
        return classes

    def split_images(self, domain: str, split: str) -> List[Tuple[str, int]]:
        folder = osp.join(self.dataset_dir, domain, split)
        images = []
        for label, name in enumerate(self.classes):
            class_dir = osp.join(folder, name)
            if osp.isdir(class_dir):
                images += [(osp.join(class_dir, f), label) for f in sorted(os.listdir(class_dir))
                           if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
        return images


@DATASET_REGISTRY.register()
class DigitsDGClips(FolderSplitDG):
    """Digits-DG (Zhou et al., AAAI 2020): MNIST, MNIST-M, SVHN and SYN digits, 10 classes, 32x32 images."""

    dataset_dir = "digits_dg"
    domains = ["mnist", "mnist_m", "svhn", "syn"]
    prepare_hint = download_hint("digits_dg")


@DATASET_REGISTRY.register()
class OfficeHomeDGClips(FolderSplitDG):
    """Office-Home (Venkateswara et al., CVPR 2017) in Dassl's DG layout: 65 classes, about 15,500 images."""

    dataset_dir = "office_home_dg"
    domains = ["art", "clipart", "product", "real_world"]
    prepare_hint = download_hint("office_home_dg")


@DATASET_REGISTRY.register()
class PACSClips(ImageDGDataset):
    """PACS (Li et al., ICCV 2017): 7 classes, 4 domains (photo 1,670, art 2,048, cartoon 2,344, sketch 3,929).

    pacs/images/<domain>/<class>/<image> and pacs/splits/<domain>_{train,crossval}_kfold.txt, lines
    `<domain>/<class>/<image> <label from 1>`."""

    dataset_dir = "pacs"
    domains = ["art_painting", "cartoon", "photo", "sketch"]
    prepare_hint = download_hint("pacs")
    classes_in_order = ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]  # labels 1..7
    # Dassl leaves out this image ("contains errors"); so do we, to test on the same images.
    left_out = ("sketch/dog/n02103406_4068-1.png",)
    split_files = {"train": "train_kfold", "val": "crossval_kfold"}

    def find_classes(self) -> List[str]:
        return list(self.classes_in_order)

    def split_images(self, domain: str, split: str) -> List[Tuple[str, int]]:
        path = osp.join(self.dataset_dir, "splits", f"{domain}_{self.split_files[split]}.txt")
        if not osp.isfile(path):
            raise DatasetNotFoundError(f'PACS split file not found: "{path}". {self.prepare_hint}')
        images = []
        for line_no, text in read_list_lines(path):
            fields = text.split()
            if len(fields) != 2 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(self.classes):
                raise ValueError(f'{path}, line {line_no}: "{text}" is not "<domain>/<class>/<image> '
                                 f'<label 1..{len(self.classes)}>"')
            label = int(fields[1]) - 1
            if fields[0].split("/")[-2:-1] != [self.classes[label]]:  # the label order is checked, not assumed
                raise ValueError(f'{path}, line {line_no}: "{fields[0]}" has label {label + 1}, which is '
                                 f'"{self.classes[label]}" in PACS\'s order {self.classes}')
            if fields[0] not in self.left_out:
                images.append((osp.join(self.dataset_dir, "images", fields[0]), label))
        missing = [p for p, _ in images if not osp.isfile(p)]
        if missing:
            raise DatasetNotFoundError(f'{len(missing)} images listed in "{path}" are missing (e.g. "{missing[0]}"). '
                                       f"{self.prepare_hint}")
        return images

