"""What the two clouds share: one PostgreSQL cluster and one RabbitMQ broker (a vhost each)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devcloud.layout import (
    CLOUDS,
    EPMD_PORT,
    LOOPBACK,
    PASSWORD,
    PG_BIN,
    PG_PORT,
    RABBIT_BIN,
    RABBIT_DIST_PORT,
    RABBIT_PORT,
    LabPaths,
)
from devcloud.procs import Entry, ProcessTable, identity_of

PG_SETTINGS = f"""
listen_addresses = '{LOOPBACK}'
port = {PG_PORT}
max_connections = 500
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
"""


def _wait(check: Callable[[], bool], what: str, timeout: float, process: Entry, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not process.alive():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise RuntimeError(f"{what} exited during start-up; end of {log}:\n{tail}")
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; see {log}")


def _reachable_by_others(path: Path) -> Path | None:
    """The first parent of ``path`` that other users (postgres) cannot enter, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def start_postgres(paths: LabPaths, procs: ProcessTable) -> None:
    data = paths.pg_data
    run_dir = data.parent / "run"
    # PostgreSQL runs as user postgres: every folder on the way to its data must let it pass
    # (a checkout under `mktemp -d` is mode 0700). Traversal only, as the lab gives .lab itself.
    while (closed := _reachable_by_others(data)) is not None:
        closed.chmod(stat.S_IMODE(closed.stat().st_mode) | stat.S_IXOTH)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(data.parent, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(run_dir, "postgres", "postgres")
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            **identity_of("postgres"),
            stdout=subprocess.DEVNULL,
            cwd="/",
        )
        with (data / "postgresql.conf").open("a") as f:
            f.write(PG_SETTINGS + f"unix_socket_directories = '{run_dir}'\n")
    log = paths.logs / "postgres.log"
    process = procs.start(
        "postgres", [str(PG_BIN / "postgres"), "-D", str(data)], log, user="postgres", cwd=Path("/")
    )
    _wait(
        lambda: (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(PG_PORT)]
            ).returncode
            == 0
        ),
        "postgres",
        60,
        process,
        log,
    )


def psql(sql: str) -> str:
    out = subprocess.run(
        [
            str(PG_BIN / "psql"),
            "-qtA",
            "-h",
            LOOPBACK,
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ensure_database(name: str) -> None:
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        psql(f"CREATE DATABASE {name}")


def _rabbit_env(paths: LabPaths) -> dict[str, str]:
    home = paths.rabbit_home
    dist_args = "-kernel inet_dist_use_interface {127,0,0,1}"
    return dict(
        os.environ,
        HOME=str(home),
        RABBITMQ_NODENAME="stackferry@localhost",
        RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
        RABBITMQ_NODE_PORT=str(RABBIT_PORT),
        RABBITMQ_DIST_PORT=str(RABBIT_DIST_PORT),
        ERL_EPMD_ADDRESS=LOOPBACK,
        ERL_EPMD_PORT=str(EPMD_PORT),
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
        RABBITMQ_CONFIG_FILE=str(home / "rabbitmq"),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=dist_args,
        RABBITMQ_CTL_ERL_ARGS=dist_args,
    )


def start_rabbitmq(paths: LabPaths, procs: ProcessTable) -> None:
    home = paths.rabbit_home
    (home / "mnesia").mkdir(parents=True, exist_ok=True)
    (home / "log").mkdir(parents=True, exist_ok=True)
    (home / "enabled_plugins").write_text("[].\n")
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {LOOPBACK}:{RABBIT_PORT}\nloopback_users = none\n"
    )
    env = _rabbit_env(paths)
    # epmd would otherwise daemonize itself outside our process table; run it in the foreground.
    procs.start(
        "epmd",
        ["epmd", "-address", LOOPBACK, "-port", str(EPMD_PORT)],
        paths.logs / "epmd.log",
        env=env,
    )
    log = paths.logs / "rabbitmq.log"
    process = procs.start("rabbitmq", [str(RABBIT_BIN / "rabbitmq-server")], log, env=env)
    ctl = [str(RABBIT_BIN / "rabbitmqctl"), "-q"]
    # await_startup fails at once while the node has not yet registered with epmd: retry it.
    _wait(
        lambda: (
            subprocess.run(
                [*ctl, "await_startup", "--timeout", "10"], env=env, capture_output=True
            ).returncode
            == 0
        ),
        "rabbitmq",
        120,
        process,
        log,
    )
    users = subprocess.run(
        [*ctl, "list_users"], env=env, check=True, capture_output=True, text=True
    ).stdout
    vhosts = subprocess.run(
        [*ctl, "list_vhosts"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    for cloud in CLOUDS:
        if cloud.name not in users.split():
            subprocess.run(
                [*ctl, "add_user", cloud.name, PASSWORD],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        if cloud.name not in vhosts:
            subprocess.run(
                [*ctl, "add_vhost", cloud.name], env=env, check=True, stdout=subprocess.DEVNULL
            )
        subprocess.run(
            [*ctl, "set_permissions", "-p", cloud.name, cloud.name, ".*", ".*", ".*"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
