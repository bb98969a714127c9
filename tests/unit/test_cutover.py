"""The cutover shared by a server and its volumes: a source server is stopped once, its power
state journalled first, however many steps ask at once; put back only as it was."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stackferry.data.transfer import DataPlane
from stackferry.engine.context import Context, SourceChanges, Tenant
from stackferry.engine.journal import Journal
from stackferry.kinds import cutover


class _Nova:
    """A source server that takes a moment to stop, as nova does; counts the actions."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.actions: list[str] = []
        self._lock = threading.Lock()

    def get_server(self, server_id: str) -> Any:
        return SimpleNamespace(id=server_id, status=self.status, task_state=None, name="vm")

    def stop_server(self, server_id: str) -> None:
        with self._lock:
            if self.status != "ACTIVE":
                raise RuntimeError("409: Cannot 'stop' instance while it is in vm_state stopped")
            self.actions.append("stop")
        time.sleep(0.05)
        self.status = "SHUTOFF"

    def start_server(self, server_id: str) -> None:
        self.actions.append("start")
        self.status = "ACTIVE"


def _ctx(tmp_path: Path, nova: _Nova, mode: str = "stop") -> Context:
    ctx = Context(conn=None, tenant=Tenant("t", "d", id="p"))  # type: ignore[arg-type]
    ctx.data = DataPlane(source=SimpleNamespace(compute=nova))  # type: ignore[arg-type]
    ctx.source_changes = SourceChanges(journal=Journal(tmp_path / "journal.sqlite"))
    ctx.options["cutover"] = mode
    return ctx


def test_many_volumes_of_one_server_stop_it_once(tmp_path: Path) -> None:
    nova = _Nova("ACTIVE")
    ctx = _ctx(tmp_path, nova)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(cutover.stop_source(ctx, "s1", "vm")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert nova.actions == ["stop"] and nova.status == "SHUTOFF"
    assert results == [True] * 4  # each step knows the server is off because of stackferry
    assert Journal.source_changes_at(tmp_path / "journal.sqlite") == {
        "server:s1": {"power_state": "running"}
    }


def test_restart_puts_back_what_was_running_once(tmp_path: Path) -> None:
    nova = _Nova("ACTIVE")
    ctx = _ctx(tmp_path, nova)
    cutover.stop_source(ctx, "s1", "vm")
    cutover.restart_source(ctx, "s1", "vm")
    cutover.restart_source(ctx, "s1", "vm")  # a second failing step: nothing more to do
    assert nova.actions == ["stop", "start"] and nova.status == "ACTIVE"
    assert Journal.source_changes_at(tmp_path / "journal.sqlite") == {}


def test_a_server_off_already_or_a_live_cutover_is_not_touched(tmp_path: Path) -> None:
    off = _Nova("SHUTOFF")
    assert cutover.stop_source(_ctx(tmp_path, off), "s1", "vm") is False
    running = _Nova("ACTIVE")
    assert cutover.stop_source(_ctx(tmp_path / "live", running, "live"), "s2", "vm") is False
    assert off.actions == running.actions == []


def test_a_server_busy_elsewhere_is_refused_before_anything_is_journalled(
    tmp_path: Path,
) -> None:
    nova = _Nova("RESIZE")
    ctx = _ctx(tmp_path, nova)
    try:
        cutover.stop_source(ctx, "s1", "vm")
        raise AssertionError("a server in RESIZE was accepted")
    except RuntimeError as exc:
        assert "must be ACTIVE or SHUTOFF" in str(exc)
    assert Journal.source_changes_at(tmp_path / "journal.sqlite") == {}


def test_a_live_run_after_a_stopping_one_knows_the_server_is_off_because_of_stackferry(
    tmp_path: Path,
) -> None:
    """So a failure in the live run still puts it back as it was."""
    nova = _Nova("ACTIVE")
    cutover.stop_source(_ctx(tmp_path, nova), "s1", "vm")
    live = _ctx(tmp_path, nova, "live")
    assert cutover.stop_source(live, "s1", "vm") is True
    assert nova.actions == ["stop"]
    cutover.restart_source(live, "s1", "vm")
    assert nova.actions == ["stop", "start"] and nova.status == "ACTIVE"
