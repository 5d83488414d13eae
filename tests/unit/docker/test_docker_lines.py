"""Line splitting of a TTY's log stream: bounded lines, linear work."""

from __future__ import annotations

import time

from dockmesh.docker.logs import LineSplitter


def test_lines_come_out_whole_with_their_newline() -> None:
    lines = LineSplitter(max_line=16)
    assert lines.feed(b"one\ntw") == [b"one\n"]
    assert lines.feed(b"o\nthree\n\n") == [b"two\n", b"three\n", b"\n"]
    assert lines.feed(b"tail") == []
    assert lines.flush() == b"tail"
    assert lines.flush() == b""


def test_a_line_longer_than_the_cap_is_split() -> None:
    lines = LineSplitter(max_line=4)
    assert lines.feed(b"abcdefghij") == [b"abcd", b"efgh"]
    assert lines.feed(b"kl\nmn") == [b"ijkl", b"\n"]
    assert lines.flush() == b"mn"
    assert LineSplitter(max_line=4).feed(b"abcdefgh\n") == [b"abcd", b"efgh", b"\n"]


def test_progress_output_without_newlines_costs_linear_time() -> None:
    """8 MiB of `\\r` progress in 4 KiB chunks: re-scanning the buffer per chunk took minutes."""
    chunk = b"progress 12345\r" * 273  # ~4 KiB
    lines = LineSplitter()
    began = time.process_time()
    out: list[bytes] = []
    for _ in range(2048):
        out.extend(lines.feed(chunk))
    elapsed = time.process_time() - began
    assert max(len(line) for line in out) == lines.max_line
    assert sum(map(len, out)) + len(lines.flush()) == len(chunk) * 2048
    assert elapsed < 5.0  # generous: linear is ~0.05 s here; quadratic was far beyond this
