"""Progress bars and log lines go where the mode says: never into a notebook's outputs in ``terminal`` mode."""

import io
import sys

import pytest

from brats_lib import progress


def test_mode_from_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.mode() == "auto"
    monkeypatch.setenv(progress.ENV, " Terminal ")
    assert progress.mode() == "terminal"
    monkeypatch.setenv(progress.ENV, "widget")
    with pytest.raises(ValueError, match="BRATS_PROGRESS"):
        progress.mode()


def test_terminal_mode_writes_to_the_terminal_stream_only(monkeypatch, capsys):
    terminal = io.StringIO()
    monkeypatch.setenv(progress.ENV, "terminal")
    monkeypatch.setattr(progress, "terminal_stream", lambda: terminal)
    for _ in progress.tqdm(range(3), desc="work", mininterval=0):
        pass
    progress.write("epoch 1: loss 0.5")
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    text = terminal.getvalue()
    assert "work" in text and "3/3" in text
    assert "epoch 1: loss 0.5\n" in text


def test_off_mode_is_silent(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV, "off")
    assert list(progress.tqdm(range(4), desc="quiet")) == [0, 1, 2, 3]
    progress.write("nothing")
    assert capsys.readouterr() == ("", "")


def test_terminal_stream_outside_a_kernel_is_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress.terminal_stream() is sys.stderr


def test_terminal_stream_inside_a_kernel_bypasses_the_forwarded_stderr(monkeypatch, tmp_path):
    # ipykernel replaces sys.stderr by a stream forwarded to the notebook and keeps a copy of the original fd 2
    import os

    target = tmp_path / "terminal.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT)

    class ForwardedStream(io.StringIO):
        _original_stdstream_copy = fd

    forwarded = ForwardedStream()
    monkeypatch.setattr(sys, "stderr", forwarded)
    monkeypatch.setattr(progress, "_terminal", None)
    stream = progress.terminal_stream()
    stream.write("to the terminal\n")
    stream.flush()
    assert forwarded.getvalue() == ""
    assert target.read_text() == "to the terminal\n"
    stream.close()
    os.close(fd)


def test_children_write_to_the_terminal_inside_a_kernel(monkeypatch, tmp_path):
    import os
    import subprocess

    target = tmp_path / "terminal.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT)

    class ForwardedStream(io.StringIO):
        _original_stdstream_copy = fd

    monkeypatch.setattr(sys, "stderr", ForwardedStream())
    monkeypatch.setenv(progress.ENV, "terminal")
    child = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    before = os.fstat(2).st_ino
    with progress.children_to_terminal():
        subprocess.run(child, check=True)
    assert os.fstat(2).st_ino == before  # fd 2 restored
    assert sorted(target.read_text().split()) == ["err", "out"]
    os.close(fd)


def test_children_to_terminal_does_nothing_in_auto_mode(monkeypatch, capfd):
    import subprocess

    monkeypatch.setenv(progress.ENV, "auto")
    with progress.children_to_terminal():
        subprocess.run([sys.executable, "-c", "print('here')"], check=True)
    assert "here" in capfd.readouterr().out


def test_terminal_stream_inside_a_kernel_without_fd_copy_is_the_process_stderr(monkeypatch):
    # under pytest ipykernel does not watch fd 2 and keeps no copy of it: sys.__stderr__ still reaches the terminal
    class KernelStream(io.StringIO):
        pass

    monkeypatch.setattr(sys, "stderr", KernelStream())
    monkeypatch.setattr(progress, "_in_kernel", lambda: True)
    assert progress.terminal_stream() is sys.__stderr__


@pytest.mark.slow
def test_terminal_mode_leaves_no_output_in_a_real_kernel(monkeypatch):
    """A real kernel started under pytest (PYTEST_CURRENT_TEST set: ipykernel then forwards sys.stderr but not
    fd 2): bars and log lines of terminal mode stay out of the notebook's outputs."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv(progress.ENV, "terminal")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from brats_lib import progress\n"
        "for _ in progress.tqdm(range(3), desc='work'):\n    pass\n"
        "progress.write('a log line')\nprint('shown')")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [(o.output_type, o.get("name"), o.get("text")) for o in outputs] == [("stream", "stdout", "shown\n")]
