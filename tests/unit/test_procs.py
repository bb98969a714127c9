import sys
from pathlib import Path

from devcloud.procs import Entry, ProcessTable, group_rss_bytes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_start_is_idempotent_and_stop_is_by_pid(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path / "pids")
    first = table.start("sleeper", SLEEPER, tmp_path / "sleeper.log")
    again = table.start("sleeper", SLEEPER, tmp_path / "sleeper.log")
    other = table.start("other", SLEEPER, tmp_path / "other.log")
    assert first == again and first.alive()
    assert table.running("sleeper") == first
    assert group_rss_bytes(first.pid) > 1024 * 1024

    stopped = table.stop({"sleeper"}, grace=5)
    assert stopped == ["sleeper"]
    assert not first.alive()
    assert other.alive(), "stopping one name must leave the others running"
    assert [e.name for e in table.entries()] == ["other"]
    table.stop(grace=5)
    assert not other.alive() and table.entries() == []


def test_reused_pid_is_not_trusted(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path / "pids")
    real = table.start("sleeper", SLEEPER, tmp_path / "sleeper.log")
    impostor = Entry(real.pid, real.start_ticks + 1, "sleeper")
    assert not impostor.alive()
    (tmp_path / "pids").write_text(impostor.line())
    assert table.running("sleeper") is None
    assert table.stop(grace=1) == []  # nothing signalled: the PID belongs to someone else
    assert real.alive()
    ProcessTable(tmp_path / "pids2").stop(grace=5)
    real_table = ProcessTable(tmp_path / "pids3")
    (tmp_path / "pids3").write_text(real.line())
    real_table.stop(grace=5)
    assert not real.alive()
