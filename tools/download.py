"""Download a benchmark's public files, check them, extract them and prepare the benchmark.

    python tools/download.py ucf_hmdb --root data [--subset N] [--no-prepare] [--no-check-certificate]
    python tools/download.py pacs --root data              # also digits_dg, office_home_dg (Google Drive, gdown)
    python tools/download.py ntu_rgbd --root data          # registration only: says where to get it

UCF-HMDB is public: UCF101.rar and hmdb51_org.rar (and the two releases' own split files) are fetched into
ROOT/ucf_hmdb/downloads/, each checked against the size the server announced (and a known size or MD5 where the
table below has one), then extracted: UCF101.rar gives UCF-101/, hmdb51_org.rar holds one RAR per class, which
are extracted in turn into hmdb51/. Then tools/prepare_ucf_hmdb.py runs. An interrupted download resumes where
it stopped (HTTP Range) when the command is run again; finished steps are skipped.

RAR archives need an external extractor: unrar, 7z or bsdtar (e.g. `apt install unrar`, `apt install
p7zip-full` or `apt install libarchive-tools`). Zip and tar archives are extracted by Python itself. The
format is read from the file's first bytes, not from its name.

The image DG sets (PACS, Digits-DG, Office-Home-DG) are the zip files on Google Drive that Dassl downloads,
fetched with gdown into ROOT/<name>/downloads/ (an interrupted download resumes from its partial file when the
command is run again), checked (the SHA-256 where one is known, and the CRC-32 of every member of the zip)
and extracted into Dassl's layout, which the dataset classes read as they are (datasets/image_dg.py).

Something-Something, PKU-MMD, NTU RGB+D and Jester are given out after registration: for them the script prints
where to ask and what to put where; EPIC-Kitchens-55's frames are public but large, and its preparation script
says which to fetch. The synthetic benchmark needs nothing: it is generated on first use.
"""
import argparse
import hashlib
import http.client
import os
import os.path as osp
import shutil
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from typing import Dict, List, NamedTuple, Optional, Sequence

from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from anywhere: import the project

from datasets.release_check import ReleaseError, run_main, writable_root  # noqa: E402

DOWNLOADS = "downloads"  # folder of the fetched archives, inside the benchmark folder
CHUNK = 1 << 20
ATTEMPTS = 4  # tries per file; each one resumes from the bytes already on disk


class Remote(NamedTuple):
    """One public file of a benchmark and where its content goes."""
    url: str
    extract_to: str  # folder (relative to the benchmark folder) the archive is extracted into
    nested_to: Optional[str] = None  # extract the archives found inside into this folder too (HMDB51)
    size: Optional[int] = None  # bytes, where known; otherwise the server's announced length is checked
    md5: Optional[str] = None

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# No size or checksum is listed: none was published with these files, and we have not measured them ourselves.
PUBLIC: Dict[str, List[Remote]] = {
    "ucf_hmdb": [
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", "."),  # -> UCF-101/<Class>/*.avi (6.5 GB)
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip", "."),
        Remote("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar", "hmdb51_org",
               nested_to="hmdb51"),  # 51 class archives -> hmdb51/<class>/*.avi (2 GB)
        Remote("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar", "hmdb51_splits"),
    ],
}

REGISTRATION = {
    "ssv2_dg": ("Something-Something v2 is given out after registration at "
                "https://www.qualcomm.com/developer/software/something-something-v-2-dataset\n"
                "Download the 20 video parts and the labels archive into {dir}/, then:\n"
                "  cd {dir} && cat 20bn-something-something-v2-?? | tar -xzf -   # -> 20bn-something-something-v2/\n"
                "  unzip 20bn-something-something-download-package-labels.zip      # -> labels/\n"
                "  python tools/prepare_ssv2.py --root {root}"),
    "pku_mmd": ("PKU-MMD is given out after registration at https://www.icst.pku.edu.cn/struct/Projects/PKUMMD.html\n"
                "Download phase 1's RGB videos and labels and extract them so that {dir}/ holds\n"
                "  RGB_VIDEO/0002-L.avi ... and Train_Label_PKU_final/0002-L.txt ...\n"
                "then: python tools/prepare_pku_mmd.py --root {root}"),
    "ntu_rgbd": ("NTU RGB+D is given out after registration at https://rose1.ntu.edu.sg/dataset/actionRecognition/\n"
                 "Download the NTU RGB+D 60 RGB videos (nturgbd_rgb_s001.zip .. nturgbd_rgb_s017.zip), then:\n"
                 "  for f in nturgbd_rgb_s0*.zip; do unzip -n \"$f\" -d {dir}; done   # -> {dir}/nturgb+d_rgb/\n"
                 "  python tools/prepare_ntu.py --root {root}"),
    "synthetic_dg": ("Nothing to download: the synthetic benchmark is generated under {root}/synthetic_video_dg/ "
                     "by the first training run (a few seconds)."),
    "jester_dg": ("Jester (20BN-Jester v1) is given out after registration at "
                  "https://www.qualcomm.com/developer/software/jester-dataset\n"
                  "Download the video parts and the label files into {dir}/, then:\n"
                  "  cd {dir} && cat 20bn-jester-v1-?? | tar -xzf -   # -> 20bn-jester-v1/<id>/00001.jpg ...\n"
                  "  python tools/prepare_jester_dg.py --root {root}   # keep jester-v1-*.csv in {dir}/"),
    "epic_kitchens_dg": ("EPIC-Kitchens-55's RGB frames are public (one tar per video, P01, P08 and P22 for the DG "
                         "domains) at https://data.bris.ac.uk/datasets/3h91syskeag572hl6tvuovwv4d/frames_rgb_flow/rgb/\n"
                         "  python tools/prepare_epic_kitchens_dg.py --root {root}   # lists every tar it needs\n"
                         "Put them as {dir}/rgb/<train|test>/<Pxx>/<video>.tar and run it again: it extracts them."),
}


class DriveFile(NamedTuple):
    """A benchmark archive on Google Drive (the file Dassl's dataset class downloads)."""
    file_id: str
    name: str
    sha256: Optional[str] = None  # none is published with these files


# Drive ids from Dassl's dataset classes (dassl/data/datasets/dg/); each zip holds the folder <name>/.
GDRIVE: Dict[str, DriveFile] = {
    "pacs": DriveFile("1m4X4fROCCXMO0lRLrr6Zz9Vb3974NWhE", "pacs.zip"),  # images/, splits/
    "digits_dg": DriveFile("15V7EsHfCcfbKgsDmzQKj_DfXt_XYp_P7", "digits_dg.zip"),  # mnist/train/0/*.jpg ...
    "office_home_dg": DriveFile("1gkbf_KaxoBws-GWT3XIPZ7BnkqbAxIFa", "office_home_dg.zip"),  # art/train/<class>/
}
# The extractors tried for RAR archives, in order: (program, arguments given archive and destination)
RAR_EXTRACTORS = (("unrar", lambda a, d: ["x", "-o+", "-idq", a, d + os.sep]),
                  ("7z", lambda a, d: ["x", "-y", f"-o{d}", a]),
                  ("bsdtar", lambda a, d: ["-xf", a, "-C", d]))


# ---------------------------------------------------------------------------------------------- download
def _request(url: str, start: int, context: Optional[ssl.SSLContext]):
    headers = {"User-Agent": "videodg-download/1"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60, context=context)


def _total_length(response, start: int) -> Optional[int]:
    """The whole file's size as the server announces it (Content-Range of a 206, Content-Length of a 200)."""
    if response.status == 206:
        announced = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(announced) if announced.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def fetch(url: str, dest: str, context: Optional[ssl.SSLContext] = None) -> int:
    """Download url to dest through dest.part, resuming a partial .part with an HTTP Range request.

    Returns the size the server announced (checked against the bytes received); a finished dest is kept.
    """
    part = dest + ".part"
    total, error = None, None
    for _ in range(ATTEMPTS):
        have = osp.getsize(part) if osp.isfile(part) else 0
        try:
            with _request(url, have, context) as response:
                if have and response.status != 206:  # the server ignored the range: start again
                    have = 0
                total = _total_length(response, have)
                if total is not None and have == total:
                    break
                with open(part, "ab" if have else "wb") as f, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=osp.basename(dest),
                             disable=None) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        f.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the .part is complete (checked below)
                total = have
                break
            raise ReleaseError(f"{url}: HTTP {e.code} {e.reason}. The file may have moved; download it by hand "
                               f"into {osp.dirname(dest)}/ and run this command again.") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLError):
                raise ReleaseError(f"{url}: {e.reason}. The UCF server's certificate is often out of date; rerun "
                                   "with --no-check-certificate to download it anyway.") from None
            error = e
            continue
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, truncated body: resume from there
            error = e
            continue
        size = osp.getsize(part)
        if total is None or size >= total:
            break
        error = OSError(f"connection closed after {size} of {total} bytes")
    else:
        raise ReleaseError(f"{url}: download failed after {ATTEMPTS} tries ({error}). Run the command again: it "
                           f"resumes from the {osp.getsize(part) if osp.isfile(part) else 0} bytes in {part}.")
    size = osp.getsize(part)
    if total is not None and size != total:
        os.remove(part)
        raise ReleaseError(f"{url}: received {size} bytes, the server announced {total}; the partial file was "
                           "removed, run the command again.")
    os.replace(part, dest)
    return size


def file_digest(path: str, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(remote: Remote, path: str) -> None:
    """Check a downloaded file against the size and MD5 the table knows; a bad file is removed."""
    problems = []
    if remote.size is not None and osp.getsize(path) != remote.size:
        problems.append(f"{osp.getsize(path)} bytes, expected {remote.size}")
    if remote.md5 is not None and file_digest(path) != remote.md5:
        problems.append(f"MD5 {file_digest(path)}, expected {remote.md5}")
    if problems:
        os.remove(path)
        raise ReleaseError(f"{path} is not the expected file ({'; '.join(problems)}); it was removed. Run the command "
                           f"again to download it anew from {remote.url}.")


# ---------------------------------------------------------------------------------------------- extraction
def archive_format(path: str) -> Optional[str]:
    """rar, zip or tar from the file's first bytes (tar also covers .tar.gz, .tgz, .tar.bz2, .tar.xz)."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        return "zip"
    return "tar" if tarfile.is_tarfile(path) else None


def _inside(folder: str, member: str) -> bool:
    target = osp.realpath(osp.join(folder, member))
    return target == osp.realpath(folder) or target.startswith(osp.realpath(folder) + os.sep)


def extract(archive: str, dest: str) -> None:
    """Extract an archive into dest (made if needed); members that would land outside dest are refused."""
    os.makedirs(dest, exist_ok=True)
    kind = archive_format(archive)
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            outside = [name for name in z.namelist() if not _inside(dest, name)]
            if outside:
                raise ReleaseError(f"{archive}: refusing members outside the target folder, e.g. {outside[0]}")
            z.extractall(dest)
    elif kind == "tar":
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")  # the data filter refuses absolute paths, .. and device files
    elif kind == "rar":
        _extract_rar(archive, dest)
    else:
        raise ReleaseError(f"{archive}: not a RAR, zip or tar archive (first bytes unknown). Delete it and run the "
                           "command again to download it anew.")


def _extract_rar(archive: str, dest: str) -> None:
    for program, arguments in RAR_EXTRACTORS:
        path = shutil.which(program)
        if path is None:
            continue
        result = subprocess.run([path] + arguments(archive, dest), capture_output=True, text=True)
        if result.returncode != 0:
            raise ReleaseError(f"{program} could not extract {archive} (exit {result.returncode}):\n"
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return
    raise ReleaseError(f"{archive} is a RAR archive and no RAR extractor is installed. Install one of: unrar "
                       "(apt install unrar), 7z (apt install p7zip-full) or bsdtar (apt install libarchive-tools; "
                       "brew install libarchive on macOS), then run the command again; the download is kept.")


def extraction_marker(archive: str) -> str:
    return osp.join(osp.dirname(archive), f".{osp.basename(archive)}.extracted")


def extract_once(archive: str, dest: str) -> bool:
    """Extract unless a marker says this archive was extracted completely before; True if it extracted."""
    marker = extraction_marker(archive)
    if osp.isfile(marker):
        return False
    print(f"Extracting {osp.basename(archive)} -> {dest}")
    extract(archive, dest)
    open(marker, "w").close()
    return True


def nested_archives(folder: str) -> List[str]:
    """The archives inside an extracted folder (HMDB51: one per class), by their first bytes."""
    found = []
    for parent, _, names in os.walk(folder):
        for name in sorted(names):
            path = osp.join(parent, name)
            if not name.startswith(".") and archive_format(path) is not None:
                found.append(path)
    return sorted(found)


# ---------------------------------------------------------------------------------------------- Google Drive
def drive_fetch(remote: DriveFile, path: str) -> str:
    """Download a Drive file to `path` with gdown (resuming a partial file of an earlier run); its SHA-256."""
    try:
        import gdown
        from gdown.exceptions import DownloadError, FileURLRetrievalError
    except ImportError:
        raise ReleaseError("Downloads from Google Drive need gdown: pip install gdown (requirements.txt lists it), "
                           "then run the command again.") from None
    digest = hashlib.sha256()
    try:
        gdown.download(id=remote.file_id, output=path, resume=True, retries=ATTEMPTS - 1, use_cookies=False,
                       hasher=digest)
    except FileURLRetrievalError as e:  # Drive's quota page, a removed file, a changed sharing setting
        raise ReleaseError(f"Google Drive refused {remote.name} (id {remote.file_id}): {str(e).strip()[:600]}\n"
                           f"Download https://drive.google.com/uc?id={remote.file_id} in a browser into "
                           f"{osp.dirname(path)}/ and run this command again.") from None
    except (DownloadError, OSError) as e:
        raise ReleaseError(f"Downloading {remote.name} failed ({e}). Run the command again: it resumes from the "
                           f"partial file in {osp.dirname(path)}/.") from None
    return digest.hexdigest()


def check_zip(path: str, sha256: Optional[str], expected: Optional[str]) -> None:
    """The SHA-256 against the known one, and every member's CRC-32 (zip's own checksum); a bad file is removed."""
    problems = []
    if expected is not None and sha256 != expected:
        problems.append(f"SHA-256 {sha256}, expected {expected}")
    else:
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                problems.append(f"member {bad} fails its CRC-32 check")
        except zipfile.BadZipFile as e:
            problems.append(f"not a complete zip archive ({e})")
    if problems:
        os.remove(path)
        raise ReleaseError(f"{path} is not the expected file ({'; '.join(problems)}); it was removed. Run the "
                           "command again to download it anew.")


def download_from_drive(benchmark: str, root: str) -> None:
    """Fetch, check and extract an image DG set into root/<benchmark>/ (Dassl's layout)."""
    remote = GDRIVE[benchmark]
    dataset_dir = osp.join(root, benchmark)
    folder = osp.join(dataset_dir, DOWNLOADS)
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, remote.name)
    sha256 = None
    if osp.isfile(path):
        print(f"{remote.name}: already downloaded")
    else:
        print(f"Downloading {remote.name} from Google Drive (id {remote.file_id})")
        sha256 = drive_fetch(remote, path)
    if not osp.isfile(extraction_marker(path)):  # a fresh download, or one put there by hand: check it first
        sha256 = sha256 or file_digest(path, "sha256")
        check_zip(path, sha256, remote.sha256)
        known = "matches the known one" if remote.sha256 else "none is published to compare with"
        print(f"{remote.name}: SHA-256 {sha256} ({known}); every member passed its CRC-32 check")
    with zipfile.ZipFile(path) as z:
        top = {name.split("/", 1)[0] for name in z.namelist()}
    extract_once(path, root if top == {benchmark} else dataset_dir)  # the zip holds <benchmark>/ or its content
    print(f"{benchmark} is ready in {dataset_dir}: train with --root {root} "
          f"--dataset-config-file configs/datasets/{benchmark}.yaml")


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", choices=sorted(list(PUBLIC) + list(GDRIVE) + list(REGISTRATION)),
                        help="folder name of the benchmark under --root")
    parser.add_argument("--root", required=True, help="DATASET.ROOT; files go to ROOT/<benchmark>/")
    parser.add_argument("--mirror", help="fetch the files from this URL prefix (MIRROR/<file name>) instead")
    parser.add_argument("--no-check-certificate", action="store_true",
                        help="do not verify TLS certificates (the UCF server's is often out of date)")
    parser.add_argument("--no-prepare", action="store_true", help="download and extract only")
    parser.add_argument("--subset", type=int, metavar="N", help="passed to the preparation script (trial run)")
    return parser


def download_benchmark(benchmark: str, dataset_dir: str, mirror: Optional[str],
                       context: Optional[ssl.SSLContext]) -> None:
    folder = osp.join(dataset_dir, DOWNLOADS)
    os.makedirs(folder, exist_ok=True)
    for remote in PUBLIC[benchmark]:
        url = f"{mirror.rstrip('/')}/{remote.name}" if mirror else remote.url
        path = osp.join(folder, remote.name)
        if osp.isfile(path):
            print(f"{remote.name}: already downloaded")
        else:
            print(f"Downloading {url}")
            fetch(url, path, context)
            verify(remote, path)
        dest = osp.normpath(osp.join(dataset_dir, remote.extract_to))
        extract_once(path, dest)
        if remote.nested_to:
            inner = nested_archives(dest)
            target = osp.join(dataset_dir, remote.nested_to)
            for archive in tqdm(inner, desc=f"Extracting the archives in {remote.extract_to}", unit="archive",
                                disable=None):
                extract_once(archive, target)
            print(f"{len(inner)} archives inside {remote.name} extracted into {target}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    root = writable_root(args.root)
    dataset_dir = osp.join(root, args.benchmark)
    if args.benchmark in REGISTRATION:
        print(REGISTRATION[args.benchmark].format(dir=dataset_dir, root=args.root))
        return 0
    if args.benchmark in GDRIVE:
        download_from_drive(args.benchmark, root)
        return 0
    context = ssl._create_unverified_context() if args.no_check_certificate else None  # noqa: S323 (asked for)
    download_benchmark(args.benchmark, dataset_dir, args.mirror, context)
    if args.no_prepare:
        print(f"Downloaded and extracted into {dataset_dir}; prepare with tools/prepare_{args.benchmark}.py")
        return 0
    from tools import prepare_ucf_hmdb  # the preparation script of the only public benchmark
    prepare_args = ["--root", root] + (["--subset", str(args.subset)] if args.subset else [])
    return prepare_ucf_hmdb.main(prepare_args)


if __name__ == "__main__":
    sys.exit(run_main(main))
