"""Ceph for the lab (``lab up --ceph``): one small cluster per cloud, on 127.0.0.1 only.

Debian 12's packages (Ceph 16 "pacific"): one monitor, one manager and one OSD on bluestore in
a sparse file (no device-mapper, no LVM, no containers), bootstrapped by hand the way
``vstart.sh`` does, as measured in the shared notes (HEALTH_OK in about 20 s). Every daemon
runs in the foreground in its own session, recorded in the lab's process table: ``lab down``
stops exactly these, by PID, and a later ``up`` starts them again on their data.

Pools: ``volumes`` (cinder's RBD backend, volume type ``ceph``) and ``images``. The admin
keyring is the lab's; stackferry is given it through its own ``ceph:`` settings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcloud.layout import LOOPBACK, Cloud, LabPaths
from devcloud.procs import ProcessTable

PACKAGES = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common", "python3-rados", "python3-rbd")
POOLS = ("volumes", "images")
OSD_BYTES = 20 * 1024**3  # sparse: only what is written takes room
# Debian builds the python bindings for its own python3.11 only; the same ABI loads in any
# CPython 3.11, so they are linked into the lab's virtualenv (cinder's RBD driver needs them).
BINDINGS = Path("/usr/lib/python3/dist-packages")
BINDING_FILES = ("rados.cpython-311-x86_64-linux-gnu.so", "rbd.cpython-311-x86_64-linux-gnu.so")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    paths: LabPaths
    cloud: Cloud
    index: int  # 0 for the first cloud: its monitor's ports

    @property
    def dir(self) -> Path:
        return self.paths.root / self.cloud.name / "ceph"

    @property
    def conf(self) -> Path:
        return self.dir / "ceph.conf"

    @property
    def keyring(self) -> Path:
        return self.dir / "client.admin.keyring"

    @property
    def mon_ports(self) -> tuple[int, int]:
        """msgr2 and msgr1 (cinder hands clients the v1 address)."""
        return 3300 + self.index, 6789 + self.index

    @property
    def bootstrapped(self) -> Path:
        return self.dir / ".bootstrapped"

    def process(self, daemon: str) -> str:
        return f"{self.cloud.name}-ceph-{daemon}"

    def ceph(self, *args: str, timeout: float = 60) -> str:
        """The ``ceph`` tool against this cluster; its output."""
        result = subprocess.run(
            ["ceph", "-c", str(self.conf), "--connect-timeout", "10", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"ceph {' '.join(args)}: {result.stderr.strip()[-400:]}")
        return result.stdout

    def status(self) -> dict[str, Any]:
        """Health, OSDs up and placement groups active+clean, from ceph's JSON."""
        health = json.loads(self.ceph("health", "--format", "json", timeout=20))
        pgs = json.loads(self.ceph("pg", "stat", "--format", "json", timeout=20))
        summary = pgs.get("pg_summary", pgs)
        # active+clean, whatever else they do meanwhile (snaptrim after a snapshot went, scrub)
        clean = sum(
            s["num"]
            for s in summary.get("num_pg_by_state", [])
            if {"active", "clean"} <= set(s["name"].split("+"))
        )
        osds = json.loads(self.ceph("osd", "stat", "--format", "json", timeout=20))
        return {
            "health": health.get("status"),
            "osds_up": int(osds.get("num_up_osds", 0)),
            "pgs": int(summary.get("num_pgs", 0)),
            "pgs_clean": clean,
        }

    def healthy(self) -> bool:
        try:
            state = self.status()
        except (RuntimeError, subprocess.TimeoutExpired, ValueError):
            return False
        return bool(
            state["health"] == "HEALTH_OK"
            and state["osds_up"] >= 1
            and state["pgs"] > 0
            and state["pgs_clean"] == state["pgs"]
        )

    def summary(self) -> str:
        try:
            s = self.status()
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            return f"{self.cloud.name} ceph: not answering ({exc})"
        return (
            f"{self.cloud.name} ceph: {s['health']}, {s['osds_up']} OSD up, "
            f"{s['pgs_clean']}/{s['pgs']} PGs active+clean"
        )


def clusters(paths: LabPaths, clouds: tuple[Cloud, ...]) -> list[Cluster]:
    return [Cluster(paths, cloud, i) for i, cloud in enumerate(clouds)]


def install(say: Say) -> bool:
    """Debian's Ceph packages, when missing. Returns whether it installed."""
    if shutil.which("ceph-osd") and all((BINDINGS / f).exists() for f in BINDING_FILES):
        return False
    say("apt-get install " + " ".join(PACKAGES))
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
        check=True,
        capture_output=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return True


def link_bindings(python: Path) -> None:
    """Debian's rados/rbd modules, linked into the site-packages of ``python``'s venv."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for name in BINDING_FILES:
        link = Path(purelib) / name
        if not link.exists():
            link.symlink_to(BINDINGS / name)


def _config(cluster: Cluster, fsid: str) -> str:
    d, (v2, v1) = cluster.dir, cluster.mon_ports
    return f"""[global]
fsid = {fsid}
mon host = [v2:{LOOPBACK}:{v2},v1:{LOOPBACK}:{v1}]
mon initial members = a
public addr = {LOOPBACK}
cluster addr = {LOOPBACK}
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
crash dir = {d}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 16
osd pool default pgp num = 16
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon max pg per osd = 1000
rbd default features = 61
[client]
keyring = {cluster.keyring}
log file =
admin socket =
[mon]
mon data = {d}/$name
keyring = {d}/$name/keyring
[mgr]
mgr data = {d}/$name
keyring = {d}/$name/keyring
[osd]
osd data = {d}/$name
keyring = {d}/$name/keyring
osd objectstore = bluestore
osd memory target = 1073741824
bluestore block create = true
bluestore block size = {OSD_BYTES}
osd max object name len = 460
osd max object namespace len = 64
"""


def _run(argv: list[str], log: Path) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    if result.returncode:
        raise RuntimeError(f"{argv[0]} failed (exit {result.returncode}); see {log}")
    return result.stdout


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(1)


def _start_daemons(cluster: Cluster, procs: ProcessTable) -> None:
    log = cluster.dir / "log"
    for daemon, argv in (
        ("mon.a", ["ceph-mon", "-i", "a"]),
        ("mgr.x", ["ceph-mgr", "-i", "x"]),
        ("osd.0", ["ceph-osd", "-i", "0"]),
    ):
        procs.start(
            cluster.process(daemon),
            [argv[0], "-c", str(cluster.conf), *argv[1:], "-f"],
            log / f"{daemon}.stdout",
        )


def _bootstrap(cluster: Cluster, procs: ProcessTable, say: Say, timeout: float) -> None:
    d = cluster.dir
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("run", "log", "mon.a", "mgr.x", "osd.0", "crash"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    fsid = str(uuid.uuid4())
    cluster.conf.write_text(_config(cluster, fsid))
    log, conf = d / "log" / "bootstrap.log", str(cluster.conf)
    mon_keyring = d / "mon.keyring"
    _run(["ceph-authtool", "--create-keyring", str(mon_keyring), "--gen-key", "-n", "mon.",
          "--cap", "mon", "allow *"], log)  # fmt: skip
    _run(["ceph-authtool", "--create-keyring", str(cluster.keyring), "--gen-key", "-n",
          "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr",
          "allow *", "--cap", "mds", "allow *"], log)  # fmt: skip
    cluster.keyring.chmod(0o600)
    _run(["ceph-authtool", str(mon_keyring), "--import-keyring", str(cluster.keyring)], log)
    v2, v1 = cluster.mon_ports
    _run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
          f"[v2:{LOOPBACK}:{v2},v1:{LOOPBACK}:{v1}]", "--enable-all-features",
          "--set-min-mon-release", "pacific", str(d / "monmap")], log)  # fmt: skip
    shutil.rmtree(d / "mon.a")
    _run(["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(d / "monmap"),
          "--keyring", str(mon_keyring)], log)  # fmt: skip
    procs.start(cluster.process("mon.a"), ["ceph-mon", "-c", conf, "-i", "a", "-f"],
                d / "log" / "mon.a.stdout")  # fmt: skip
    _wait(lambda: _answers(cluster), f"{cluster.cloud.name} ceph monitor", timeout)
    cluster.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *",
                 "mds", "allow *", "-o", str(d / "mgr.x" / "keyring"))  # fmt: skip
    key = _run(["ceph-authtool", "--gen-print-key"], log).strip()
    osd_uuid = str(uuid.uuid4())
    secret = d / "osd-secret.json"
    secret.write_text(json.dumps({"cephx_secret": key}))
    osd_id = cluster.ceph("osd", "new", osd_uuid, "-i", str(secret)).strip()
    secret.unlink()
    if osd_id != "0":
        raise RuntimeError(f"{cluster.cloud.name} ceph: expected osd.0, got osd.{osd_id}")
    (d / "osd.0" / "keyring").write_text(f"[osd.0]\n\tkey = {key}\n")
    _run(["ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--key", key, "--osd-uuid", osd_uuid],
         log)  # fmt: skip
    _start_daemons(cluster, procs)
    _wait(lambda: _osds_up(cluster), f"{cluster.cloud.name} ceph OSD", timeout)
    cluster.ceph("osd", "set-require-min-compat-client", "mimic")  # clone v2, as cinder likes
    for pool in POOLS:
        cluster.ceph("osd", "pool", "create", pool, "16", "16", "--autoscale-mode=off")
    for pool in POOLS:
        _run(["rbd", "-c", conf, "pool", "init", pool], log)
    cluster.bootstrapped.touch()
    say(f"{cluster.cloud.name} ceph bootstrapped")


def _answers(cluster: Cluster) -> bool:
    try:
        cluster.ceph("-s", timeout=15)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def _osds_up(cluster: Cluster) -> bool:
    try:
        return bool(cluster.status()["osds_up"] >= 1)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError):
        return False


HOST_CEPH = Path("/etc/ceph")


def host_keyring(cluster: Cluster) -> Path:
    """Where os-brick (cinder's upload of an RBD volume to an image, nova's attach) looks for
    the keyring of a cluster named after the cloud: linked to the lab's, as a real host has
    its keyrings in /etc/ceph."""
    link = HOST_CEPH / f"{cluster.cloud.name}.client.admin.keyring"
    HOST_CEPH.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == cluster.keyring.resolve():
            return link
        link.unlink()
    link.symlink_to(cluster.keyring)
    return link


def start(cluster: Cluster, procs: ProcessTable, say: Say, timeout: float) -> None:
    """Bootstrap the cluster the first time; afterwards start what is not running, on its
    data. Waits for HEALTH_OK with every placement group active+clean."""
    if not cluster.bootstrapped.exists():
        _bootstrap(cluster, procs, say, timeout)
    else:
        _start_daemons(cluster, procs)
    host_keyring(cluster)
    _wait(cluster.healthy, f"{cluster.cloud.name} ceph health", timeout)
