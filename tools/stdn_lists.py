"""STDN's list files (github.com/KunyuLin/STDN, datalists/), the clips of its EPIC-Kitchens-55 DG and Jester DG
benchmarks: fetched by URL at a pinned commit and checked by SHA-256, or read from a local copy (--stdn-lists).

The repository carries no licence, so the lists are not copied into this project; the preparation scripts fetch
them into <benchmark folder>/stdn_lists/. Their lines are `path start end label`: for EPIC-Kitchens-55,
`<train|test>/<Pxx>/<Pxx_yy> start_frame stop_frame verb_class` (EPIC's frame numbers of the action segment);
for Jester, `<video id> 0 <frames> label`.
"""
import os
import os.path as osp
import shutil
from typing import List, NamedTuple, Optional

from datasets.release_check import ReleaseError
from tools.download import fetch, file_digest
from video.listfile import read_list_lines

COMMIT = "d11f966e729600f5460db9d91516534981fc3844"  # KunyuLin/STDN, 2023-10-26
URL = "https://raw.githubusercontent.com/KunyuLin/STDN/{commit}/datalists/{path}"
FOLDER = "stdn_lists"  # inside the benchmark folder
EPIC = "EPIC-KITCHENS-55-DG-list/epic_kitchens_55_da_{domain}_{part}list.txt"  # part: train, val, full
JESTER = "Jester-DG-list/jester_{part}list.txt"  # part: source_train, source_val, target_full
# SHA-256 of each file at COMMIT (measured on that commit).
SHA256 = {
    EPIC.format(domain="D1", part="full"): "d7d244a0b24188f739e92f66530a3402ce052235d272ff8021213321af4721e3",
    EPIC.format(domain="D1", part="train"): "effda658634efd72a6d5a5f5758c3da206d09ebd95025d9be91035720d1e41ae",
    EPIC.format(domain="D1", part="val"): "f677e16b185e69bcbe9d7334152156c0c1cd8e460de5a1f003a8f9580e56168f",
    EPIC.format(domain="D2", part="full"): "45c5b2c7d8862244f8c139cc3c4d7531f1d20bbd7b8d8c6cbf9ad66dd8620d03",
    EPIC.format(domain="D2", part="train"): "1bea723b9ecdb2112271aa50149253fa99d791258ecb4e1c05cd9c5833d1c135",
    EPIC.format(domain="D2", part="val"): "5cb12c2c938743126a6003bf569e6365da2cad1b6d921d5a8ba5ee6eaf66ac70",
    EPIC.format(domain="D3", part="full"): "0e77b62ac3529cbee60dafc3080d481ff27512ba1a08b7a9235ce559fe72374e",
    EPIC.format(domain="D3", part="train"): "1961da838fb6eca9517b6d53f8cba65ea8c5d16c470d4f37e68e8738b560587e",
    EPIC.format(domain="D3", part="val"): "7b365b452e65199cf07330f7784cd482a95eb445491cd92599a93e4c02efbafe",
    JESTER.format(part="source_train"): "24ff33709452b13453261eb4e7d33e07ee0a115e2d361a532158eaec43b38c88",
    JESTER.format(part="source_val"): "428c50d05a6c672741a63bb6d5c3f8187ca9a9e58d43f51311f36aebbb532e74",
    JESTER.format(part="target_full"): "324c77dfa02bd786bb98969344f4b2b114913d369db617435b005a575d7f7f68",
}
SOURCE = f"STDN's lists (github.com/KunyuLin/STDN at {COMMIT[:7]}, datalists/)"


class Segment(NamedTuple):
    """One line of an STDN list."""
    path: str
    start: int
    end: int
    label: int
    line: int


def stdn_list(relpath: str, dataset_dir: str, local: Optional[str] = None, url: Optional[str] = None) -> str:
    """A checked copy of one STDN list in dataset_dir/stdn_lists/: kept if already there, else copied from
    `local` (a clone of the repository, its datalists/ folder, or a folder of the files) or fetched from `url`
    (a prefix standing for .../datalists/; default: GitHub at COMMIT)."""
    dest = osp.join(dataset_dir, FOLDER, osp.basename(relpath))
    if not (osp.isfile(dest) and file_digest(dest, "sha256") == SHA256[relpath]):
        os.makedirs(osp.dirname(dest), exist_ok=True)
        if local:
            candidates = [osp.join(local, p) for p in (osp.join("datalists", relpath), relpath, osp.basename(relpath))]
            found = next((p for p in candidates if osp.isfile(p)), None)
            if found is None:
                raise ReleaseError(f'--stdn-lists "{local}" has no {relpath} (nor datalists/{relpath}). Point it at a '
                                   "clone of github.com/KunyuLin/STDN, or drop it to fetch the lists.")
            shutil.copyfile(found, dest)
        else:
            link = f"{url.rstrip('/')}/{relpath}" if url else URL.format(commit=COMMIT, path=relpath)
            print(f"Fetching {link}")
            fetch(link, dest)
        if file_digest(dest, "sha256") != SHA256[relpath]:
            got = file_digest(dest, "sha256")
            os.remove(dest)
            raise ReleaseError(f"{relpath} is not the file of {SOURCE} (SHA-256 {got}, expected {SHA256[relpath]}). "
                               "Use the lists of that commit (git -C STDN checkout " + COMMIT[:7] + ").")
    return dest


def read_segments(path: str) -> List[Segment]:
    """The `path start end label` lines of an STDN list, in file order."""
    segments = []
    for number, text in read_list_lines(path):
        fields = text.split()
        if len(fields) != 4 or not all(x.isdigit() for x in fields[1:]):
            raise ReleaseError(f'{path}, line {number}: "{text}" is not "path start end label"')
        segments.append(Segment(fields[0], int(fields[1]), int(fields[2]), int(fields[3]), number))
    return segments
