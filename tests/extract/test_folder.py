"""Folder uploads never leave themselves: links and special files are refused one by one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.extract.helpers import split
from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.folder import FolderFile, open_regular, walk_folder
from tokenclub.extract.reader import iter_extract

SECRET = "서버의 비밀 파일입니다. 업로드에 들어가면 안 됩니다."


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    """An upload folder with one good file and every kind of way out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    up = tmp_path / "up"
    (up / "sub").mkdir(parents=True)
    (up / "good.txt").write_text("정상적인 기사 본문입니다.", encoding="utf-8")
    (up / "passwd.txt").symlink_to(outside / "secret.txt")
    (up / "linked_dir").symlink_to(outside)
    (up / "sub" / "dangling.txt").symlink_to(tmp_path / "nowhere")
    os.link(outside / "secret.txt", up / "sub" / "hard.txt")
    os.mkfifo(up / "pipe.txt")
    return up


def test_walk_refuses_links_and_special_files(upload: Path) -> None:
    entries = list(walk_folder(upload, "up"))
    assert entries == [
        FolderFile("up/good.txt", upload / "good.txt"),
        ExtractionFailure("up/linked_dir", "symbolic link; skipped (uploads never follow links)"),
        ExtractionFailure("up/passwd.txt", "symbolic link; skipped (uploads never follow links)"),
        ExtractionFailure("up/pipe.txt", "not a regular file (a named pipe); skipped"),
        ExtractionFailure("up/sub/dangling.txt", "symbolic link; skipped (uploads never follow links)"),
        ExtractionFailure(
            "up/sub/hard.txt", "hard link (2 names for one file); skipped: copy the file to upload it"
        ),
    ]


def test_extract_reads_only_the_regular_file(upload: Path) -> None:
    docs, failures = split(iter_extract(upload, source="up"))
    assert [(d.source, d.text) for d in docs] == [("up/good.txt", "정상적인 기사 본문입니다.")]
    assert [f.source for f in failures] == [
        "up/linked_dir",
        "up/passwd.txt",
        "up/pipe.txt",
        "up/sub/dangling.txt",
        "up/sub/hard.txt",
    ]
    assert all(SECRET not in d.text for d in docs)


def test_a_file_swapped_for_a_link_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text(SECRET, encoding="utf-8")
    link = tmp_path / "a.txt"
    link.symlink_to(target)
    with pytest.raises(ExtractionError, match=r"^up/a.txt: symbolic link; skipped"):
        open_regular(link, "up/a.txt")
    plain = tmp_path / "b.txt"
    plain.write_bytes(b"ok")
    with open_regular(plain, "up/b.txt") as file:
        assert file.read() == b"ok"
