"""Progress reaches logs: plain lines on standard error when it is not a terminal, nothing when off."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import cli_env

import cellscribe.progress as progress
from cellscribe import settings


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Err:
    """Standard error as pytest captures it (not a terminal)."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys, monkeypatch):
    monkeypatch.setattr(settings, "progress", True)
    capsys.readouterr()
    return _Err(capsys)


def test_plain_lines_when_not_a_terminal(stderr, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 3600.0)  # only the first and the last item print
    with progress.Progress(5, "annotating with m", unit="clusters") as advance:
        for _ in range(5):
            advance()
    lines = stderr.getvalue().splitlines()
    assert lines[0] == "cellscribe: annotating with m: 5 clusters"
    assert lines[1].startswith("cellscribe: annotating with m: 1/5 clusters, ") and lines[1].endswith(" left")
    assert lines[-1].startswith("cellscribe: annotating with m: 5/5 clusters, ") and "left" not in lines[-1]
    assert len(lines) == 3


def test_every_item_prints_when_items_are_slow(stderr, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    losses = [0.5]
    with progress.Progress(3, "training", unit="steps", status=lambda: f"loss {losses[-1]:.2f}") as advance:
        for _ in range(3):
            advance()
    lines = stderr.getvalue().splitlines()
    assert [line.split(": ", 2)[2].split(",")[0] for line in lines[1:]] == ["1/3 steps", "2/3 steps", "3/3 steps"]
    assert all(line.endswith("(loss 0.50)") for line in lines[1:])


def test_nothing_when_off(stderr, monkeypatch):
    with progress.Progress(3, "x", show=False) as advance:
        advance(3)
    monkeypatch.setattr(settings, "progress", False)
    with progress.Progress(3, "x") as advance, progress.phase("building"):
        advance(3)
    progress.say("hello")
    assert stderr.getvalue() == ""


def test_phase_says_when_it_starts_and_how_long_it_took(stderr):
    with progress.phase("building the index"):
        pass
    with pytest.raises(KeyError), progress.phase("reading"):
        raise KeyError("x")
    assert stderr.getvalue().splitlines() == [
        "cellscribe: building the index ...", "cellscribe: building the index: done in 0 s",
        "cellscribe: reading ...", "cellscribe: reading: failed after 0 s"]


def test_a_terminal_gets_a_bar_not_lines(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setattr(settings, "progress", True)
    assert progress.is_terminal()
    with progress.Progress(2, "annotating", unit="clusters") as advance:
        advance(2)
    assert "cellscribe: annotating:" not in tty.getvalue()


def test_cli_prints_progress_lines_into_a_log(tmp_path):
    """`cellscribe annotate` with stderr redirected to a file: the grounded run says what it does."""
    path = tmp_path / "m.csv"
    path.write_text("cluster,gene\n" + "".join(f"b,{g}\n" for g in ("MS4A1", "CD79A", "CD19", "CD79B")))
    env = cli_env()
    out = subprocess.run([sys.executable, "-m", "cellscribe", "annotate", str(path), "--no-explain"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cellscribe: annotating (grounded) with marker databases: 1/1 clusters" in out.stderr
