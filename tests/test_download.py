"""tools/download.py against a local HTTP server (127.0.0.1 only) that serves archives the tests build.

Covered formats: zip and tar.gz archives (Python extracts them), nested archives (HMDB51's archive of class
archives, here zips inside a tar.gz), served under the real file names; the format is read from the first
bytes. RAR extraction itself is not covered (no RAR writer is available to build one); a RAR file without an
installed extractor is, as is the download side: resume with HTTP Range, a connection cut mid-file, a size or
MD5 mismatch, and the registration-only benchmarks' instructions.
"""
import http.server
import io
import os
import os.path as osp
import tarfile
import threading
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
