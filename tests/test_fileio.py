"""framework/fileio.py: the project's one atomic writer and umask reader."""
import os
import stat

import pytest

from framework.fileio import current_umask, stale_temp_file_pid, write_atomic, write_text_atomic


def test_text_lands_whole_with_the_permissions_of_a_plain_open(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        target = tmp_path / "new" / "folder" / "split.json"
        write_text_atomic(str(target), '{"val": []}')
        assert target.read_text() == '{"val": []}'
        assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 under umask 027, not mkstemp's 0o600
        assert current_umask() == 0o027  # reading it did not change it
    finally:
        os.umask(old)
    assert os.listdir(target.parent) == ["split.json"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "results.json"
    target.write_text("old")
    seen = []

    def half_then_fail(temporary: str) -> None:
        seen.append(temporary)
        with open(temporary, "w") as f:
            f.write("half of the new")
        raise error

    with pytest.raises(type(error)):
        write_atomic(str(target), half_then_fail)
    assert seen and not os.path.exists(seen[0])
    assert os.listdir(tmp_path) == ["results.json"] and target.read_text() == "old"


def test_temporary_names_tell_whose_they_are(tmp_path):
    names = []
    write_atomic(str(tmp_path / "model.pth.tar-3"), lambda temporary: names.append(os.path.basename(temporary)))
    assert names[0].startswith(".model.pth.tar-3.tmp-")
    assert stale_temp_file_pid(names[0]) == os.getpid()
    assert stale_temp_file_pid("model.pth.tar-3.tmp-4242") == 4242  # the form older runs left
    assert stale_temp_file_pid("model.pth.tar-3") is None and stale_temp_file_pid("notes.tmp-x") is None
