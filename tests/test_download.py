"""tools/download.py against a local HTTP server (127.0.0.1 only) that serves archives the tests build; for the
image DG sets, a local stand-in for Google Drive behind requests' HTTP transport, so that gdown runs as it would.

Covered formats: zip and tar.gz archives (Python extracts them), nested archives (HMDB51's archive of class
archives, here zips inside a tar.gz), served under the real file names; the format is read from the first
bytes. RAR extraction itself is not covered (no RAR writer is available to build one); a RAR file without an
installed extractor is, as is the download side: resume with HTTP Range, a connection cut mid-file, a size or
MD5 mismatch, and the registration-only benchmarks' instructions.
"""
import hashlib
import http.server
import io
import os
import os.path as osp
import re
import tarfile
import threading
import urllib.parse
import zipfile

import pytest

from datasets import ucf_hmdb
from tests.test_benchmarks import read_list, write_video
from tools import download


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (name -> bytes) with HTTP Range; `cut` makes the first full response stop early."""
    files: dict = {}
    log: list = []
    cut: dict = {}  # name -> bytes sent before the connection is dropped (once)

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        data, start = self.files[name], 0
        header = self.headers.get("Range")
        self.log.append((name, header))
        if header:
            start = int(header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if name in self.cut:
            body = body[:self.cut.pop(name)]
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.log, RangeHandler.cut = {}, [], {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()
    httpd.server_close()


def zip_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


def tgz_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def ucf_hmdb_archives(tmp_path, monkeypatch):
    """The four public UCF-HMDB files as archives with the releases' layout: 2 videos per class folder."""
    video = open(write_video(str(tmp_path / "one.avi")), "rb").read()
    ucf = {f"UCF-101/{folder}/v_{folder}_g0{g}_c01.avi": video for folder in ucf_hmdb.UCF_FOLDERS for g in (1, 2)}
    ucf["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"] = video
    classes = {folder: zip_bytes({f"{folder}/Film{k}_{folder}_f_cm_np1_le_med_0.avi": video for k in (1, 2)})
               for folder in list(ucf_hmdb.HMDB_FOLDERS) + ["brush_hair"]}
    for expected in (ucf_hmdb.EXPECTED_UCF, ucf_hmdb.EXPECTED_HMDB):
        for folder in expected:
            monkeypatch.setitem(expected, folder, 2)
    return {"UCF101.rar": zip_bytes(ucf),
            "UCF101TrainTestSplits-RecognitionTask.zip": zip_bytes({"ucfTrainTestlist/classInd.txt": b"1 Archery\n"}),
            "hmdb51_org.rar": tgz_bytes({f"{name}.rar": data for name, data in classes.items()}),
            "test_train_splits.rar": zip_bytes({"testTrainMulti_7030_splits/climb_test_split1.txt": b"x 1\n"})}


def test_ucf_hmdb_is_downloaded_extracted_and_prepared(server, ucf_hmdb_archives, tmp_path, capsys):
    url, handler = server
    handler.files.update(ucf_hmdb_archives)
    root = tmp_path / "data"
    assert download.main(["ucf_hmdb", "--root", str(root), "--mirror", url]) == 0
    folder = root / "ucf_hmdb"
    assert len(read_list(str(folder / "ucf.txt"))) == 30 and len(read_list(str(folder / "hmdb.txt"))) == 24
    assert (folder / "hmdb51" / "climb" / "Film1_climb_f_cm_np1_le_med_0.avi").is_file()  # nested archives
    assert (folder / "ucfTrainTestlist" / "classInd.txt").is_file()
    assert (folder / "splits" / "ucf_val0.3_seed1.json").is_file()
    for name, data in ucf_hmdb_archives.items():
        assert (folder / "downloads" / name).read_bytes() == data
    # a second run fetches and extracts nothing again
    handler.log.clear()
    assert download.main(["ucf_hmdb", "--root", str(root), "--mirror", url]) == 0
    assert handler.log == [] and "already downloaded" in capsys.readouterr().out


def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    url, handler = server
    data = os.urandom(3 * download.CHUNK + 123)
    handler.files["big.zip"] = data
    dest = str(tmp_path / "big.zip")
    with open(dest + ".part", "wb") as f:  # a previous run stopped after 1000 bytes
        f.write(data[:1000])
    handler.cut["big.zip"] = download.CHUNK + 5  # and this one loses the connection once more
    assert download.fetch(f"{url}/big.zip", dest) == len(data)
    assert open(dest, "rb").read() == data and not osp.exists(dest + ".part")
    assert handler.log[0] == ("big.zip", "bytes=1000-")
    assert handler.log[1] == ("big.zip", f"bytes={1000 + download.CHUNK + 5}-")


def test_a_wrong_size_or_checksum_is_reported_and_the_file_removed(server, tmp_path, monkeypatch):
    url, handler = server
    handler.files["UCF101.rar"] = b"PK\x05\x06" + bytes(18)  # an empty zip
    remote = download.Remote(f"{url}/UCF101.rar", ".", size=999)
    monkeypatch.setitem(download.PUBLIC, "ucf_hmdb", [remote])
    with pytest.raises(download.ReleaseError, match="22 bytes, expected 999"):
        download.main(["ucf_hmdb", "--root", str(tmp_path), "--mirror", url])
    assert not (tmp_path / "ucf_hmdb" / "downloads" / "UCF101.rar").exists()
    monkeypatch.setitem(download.PUBLIC, "ucf_hmdb", [remote._replace(size=None, md5="0" * 32)])
    with pytest.raises(download.ReleaseError, match="MD5 .*, expected 0000"):
        download.main(["ucf_hmdb", "--root", str(tmp_path), "--mirror", url])
    with pytest.raises(download.ReleaseError, match="HTTP 404"):
        download.fetch(f"{url}/missing.rar", str(tmp_path / "missing.rar"))


def test_a_rar_without_an_extractor_names_the_ones_to_install(tmp_path, monkeypatch):
    archive = tmp_path / "UCF101.rar"
    archive.write_bytes(b"Rar!\x1a\x07\x01\x00" + bytes(32))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # as on a machine without any extractor
    with pytest.raises(download.ReleaseError) as info:
        download.extract(str(archive), str(tmp_path / "out"))
    assert all(name in str(info.value) for name in ("unrar", "7z", "bsdtar", "apt install"))


def test_unsafe_archive_members_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"../outside.txt": b"x"}))
    with pytest.raises(download.ReleaseError, match="outside the target folder"):
        download.extract(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("name", ["ntu_rgbd", "pku_mmd", "ssv2_dg", "synthetic_dg"])
def test_registration_only_benchmarks_say_where_to_get_them(name, tmp_path, capsys):
    assert download.main([name, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and ("https://" in out or "Nothing to download" in out)


def test_a_root_that_cannot_be_made_gets_advice(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert download.run_main(download.main, ["ucf_hmdb", "--root", str(tmp_path / "file" / "data")]) == 1
    err = capsys.readouterr().err
    assert "Cannot create --root" in err and "folder you can write to" in err and "Traceback" not in err
    assert download.run_main(download.main, ["ucf_hmdb", "--root", str(tmp_path / "file")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Google Drive (gdown)
GOOGLE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")


class DriveHandler(http.server.BaseHTTPRequestHandler):
    """Google Drive as gdown meets it for a large file: /uc?id=ID answers with the virus-scan warning page,
    whose download form leads to drive.usercontent.google.com/download?...&confirm=t, which serves the file
    (with Range and If-Range). `files`: id -> (name, bytes); `cut`: id -> bytes sent before the first ranged
    transfer breaks off; `refuse`: ids answered with Drive's quota page."""
    files: dict = {}
    log: list = []
    cut: dict = {}
    refuse: set = set()

    def do_GET(self):
        host, _, rest = self.path.lstrip("/").partition("/")
        parts = urllib.parse.urlsplit("/" + rest)
        query = urllib.parse.parse_qs(parts.query)
        file_id = query.get("id", [""])[0]
        self.log.append((host, parts.path, self.headers.get("Range")))
        if file_id not in self.files:
            self.send_error(404)
        elif host == "drive.google.com" and parts.path == "/uc":
            self.page(file_id)
        elif host == "drive.usercontent.google.com" and parts.path == "/download" and query.get("confirm") == ["t"]:
            self.serve(file_id)
        else:
            self.send_error(400)

    def page(self, file_id: str) -> None:
        if file_id in self.refuse:
            body = ('<html><body><p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
                    "recently.</p></body></html>")
        else:  # gdown reads the form from one line
            body = ('<html><body><form id="download-form" action="https://drive.usercontent.google.com/download" '
                    f'method="get"><input type="hidden" name="id" value="{file_id}"><input type="hidden" '
                    'name="export" value="download"><input type="hidden" name="confirm" value="t"><input '
                    'type="hidden" name="uuid" value="5e0c1a2b"></form></body></html>\n')
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self, file_id: str) -> None:
        name, data = self.files[file_id]
        etag = f'"{len(data)}-{file_id}"'
        start, header = 0, self.headers.get("Range")
        if header and self.headers.get("If-Range", etag) == etag:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{name}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        if file_id in self.cut and header:  # gdown reads a body only after asking for the bytes it lacks
            body = body[:self.cut.pop(file_id)]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def drive(monkeypatch, tmp_path):
    """A local stand-in for Google Drive behind the HTTP transport: every request requests (and so gdown) sends
    to a Google host goes to it instead; gdown's own logic (confirmation page, resume, hashing) runs unchanged."""
    import requests

    DriveHandler.files, DriveHandler.log, DriveHandler.cut, DriveHandler.refuse = {}, [], {}, set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DriveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{httpd.server_address[1]}"
    send = requests.adapters.HTTPAdapter.send

    def routed(adapter, request, **kwargs):
        parts = urllib.parse.urlsplit(request.url)
        if parts.hostname in GOOGLE_HOSTS:
            request.url = f"{local}/{parts.hostname}{parts.path}?{parts.query}"
        return send(adapter, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", routed)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # gdown's cookie folder, if it were used
    yield DriveHandler
    httpd.shutdown()
    httpd.server_close()


def folder_zip(root, top: str) -> bytes:
    """A zip of root/top with members top/..., as Dassl's archives are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for parent, _, names in os.walk(osp.join(root, top)):
            for name in names:
                path = osp.join(parent, name)
                z.write(path, osp.relpath(path, root))
    return buffer.getvalue()


@pytest.fixture
def pacs_zip(tmp_path):
    from tests.test_image_dg import mini_pacs
    mini_pacs(tmp_path / "src")
    return folder_zip(tmp_path / "src", "pacs")


def test_pacs_is_fetched_with_gdown_checked_and_extracted_into_dassls_layout(drive, pacs_zip, tmp_path, capsys):
    from framework import build_dataset
    from tests.test_image_dg import make_cfg
    pacs = download.GDRIVE["pacs"]
    drive.files[pacs.file_id] = (pacs.name, pacs_zip)
    root = tmp_path / "data"
    assert download.main(["pacs", "--root", str(root)]) == 0
    assert [(host, path) for host, path, _ in drive.log] == [("drive.google.com", "/uc"),
                                                           ("drive.usercontent.google.com", "/download")]
    out = capsys.readouterr().out
    assert f"SHA-256 {hashlib.sha256(pacs_zip).hexdigest()}" in out and "CRC-32" in out
    assert (root / "pacs" / "downloads" / "pacs.zip").read_bytes() == pacs_zip
    dataset = build_dataset(make_cfg("PACSClips", root, ["photo"], ["sketch"]))
    assert len(dataset.train_x) == 14 and len(dataset.test) == 21
    drive.log.clear()
    assert download.main(["pacs", "--root", str(root)]) == 0  # nothing fetched or extracted again
    assert drive.log == [] and "already downloaded" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["digits_dg", "office_home_dg"])
def test_the_folder_layout_sets_are_fetched_the_same_way(drive, tmp_path, name):
    from framework import build_dataset
    from datasets import image_dg
    from tests.test_image_dg import make_cfg, mini_folders
    cls = image_dg.DigitsDGClips if name == "digits_dg" else image_dg.OfficeHomeDGClips
    mini_folders(tmp_path / "src", cls, ["a", "b"])
    remote = download.GDRIVE[name]
    drive.files[remote.file_id] = (remote.name, folder_zip(tmp_path / "src", name))
    assert download.main([name, "--root", str(tmp_path / "data")]) == 0
    dataset = build_dataset(make_cfg(cls.__name__, tmp_path / "data", cls.domains[:1], cls.domains[1:]))
    assert dataset.classnames == ["a", "b"] and len(dataset.test) == 3 * 2 * 3


def test_an_interrupted_drive_download_resumes_from_its_partial_file(drive, pacs_zip, tmp_path):
    pacs = download.GDRIVE["pacs"]
    drive.files[pacs.file_id] = (pacs.name, pacs_zip)
    folder = tmp_path / "data" / "pacs" / "downloads"
    folder.mkdir(parents=True)
    (folder / "pacs.zipk3j9x0qa.part").write_bytes(pacs_zip[:1000])  # gdown's partial file of an earlier run
    drive.cut[pacs.file_id] = 2000  # and this run's transfer breaks off once more
    assert download.main(["pacs", "--root", str(tmp_path / "data")]) == 0
    ranges = [r for host, _, r in drive.log if host == "drive.usercontent.google.com"]
    # the headers first, then the bytes the partial file lacks; after the break, the bytes still missing
    assert ranges[:2] == [None, "bytes=1000-"] and len(ranges) == 3
    assert int(ranges[2].split("=")[1].rstrip("-")) >= 1000
    assert (folder / "pacs.zip").read_bytes() == pacs_zip and not list(folder.glob("*.part"))
    assert (tmp_path / "data" / "pacs" / "images" / "photo" / "dog" / "train_0.jpg").is_file()


def test_a_wrong_checksum_or_a_damaged_zip_is_reported_and_removed(drive, pacs_zip, tmp_path, monkeypatch):
    pacs = download.GDRIVE["pacs"]
    drive.files[pacs.file_id] = (pacs.name, pacs_zip)
    monkeypatch.setitem(download.GDRIVE, "pacs", pacs._replace(sha256="0" * 64))
    with pytest.raises(download.ReleaseError, match="SHA-256 .*, expected 0000.*removed"):
        download.main(["pacs", "--root", str(tmp_path / "data")])
    archive = tmp_path / "data" / "pacs" / "downloads" / "pacs.zip"
    assert not archive.exists()
    monkeypatch.setitem(download.GDRIVE, "pacs", pacs)
    member = zipfile.ZipFile(io.BytesIO(pacs_zip)).infolist()[0]
    offset = member.header_offset + 30 + len(member.filename) + len(member.extra)  # the member's first data byte
    damaged = bytearray(pacs_zip)
    damaged[offset] ^= 0xFF
    drive.files[pacs.file_id] = (pacs.name, bytes(damaged))
    with pytest.raises(download.ReleaseError, match=f"member {re.escape(member.filename)} fails its CRC-32 check"):
        download.main(["pacs", "--root", str(tmp_path / "data")])
    assert not archive.exists() and not (tmp_path / "data" / "pacs" / "images").exists()


def test_drives_quota_page_says_how_to_download_by_hand(drive, tmp_path):
    pacs = download.GDRIVE["pacs"]
    drive.files[pacs.file_id] = (pacs.name, b"unused")
    drive.refuse.add(pacs.file_id)
    with pytest.raises(download.ReleaseError, match="(?s)Too many users.*in a browser into .*downloads/"):
        download.main(["pacs", "--root", str(tmp_path / "data")])
