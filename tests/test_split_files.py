"""The split-file writer under concurrency: every writer uses a temporary file of its own, so concurrent
writers of one split file never crash and leave a complete file (two writers used to share `<file>.tmp`)."""
import json
import multiprocessing
import os
import threading

from datasets.base import write_split_file


def write_many(path: str, writer: int, times: int) -> None:
    for k in range(times):
        write_split_file(path, "ucf", 0.3, 1, [f"clip_{writer}_{k}_{i}" for i in range(50)], writer=writer)


def test_concurrent_writers_of_one_split_file_never_collide(tmp_path):
    path = str(tmp_path / "splits" / "ucf_val0.3_seed1.json")
    errors = []

    def thread_writer(writer: int) -> None:
        try:
            write_many(path, writer, 150)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=thread_writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    processes = [multiprocessing.get_context("fork").Process(target=write_many, args=(path, w, 150))
                 for w in (100, 101)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert errors == [] and [p.exitcode for p in processes] == [0, 0]
    with open(path) as f:
        content = json.load(f)
    assert len(content["val"]) == 50 and all(key.startswith(f"clip_{content['writer']}_") for key in content["val"])
    assert os.listdir(tmp_path / "splits") == ["ucf_val0.3_seed1.json"]  # no temporary file left behind
