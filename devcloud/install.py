"""Install the lab: OpenStack from PyPI into its own virtualenv, infrastructure from Debian."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devcloud.layout import DEBIAN_PACKAGES, OPENSTACK_PACKAGES, PG_BIN, RABBIT_BIN, LabPaths

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "constraints.txt"
PLUGINS = HERE / "lab_plugins"

# Services call "sudo <svc>-rootwrap CONF cmd" or "sudo privsep-helper"; the lab runs as root
# and has no sudo, so this shim, first on the services' PATH, drops the wrapper and runs cmd.
SUDO_SHIM = """#!/bin/sh
# the lab: services run as root; drop "sudo [-E] [*-rootwrap CONF]" and run the command
[ "$1" = "-E" ] && shift
case "$1" in *-rootwrap|*-rootwrap-daemon) shift; shift;; esac
exec "$@"
"""


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{' '.join(argv[:4])}... failed (exit {result.returncode}); "
            f"end of {log}:\n" + "\n".join(tail)
        )


def _plugins_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PLUGINS.rglob("*")):
        if path.is_file() and "egg-info" not in str(path) and "__pycache__" not in str(path):
            digest.update(path.relative_to(PLUGINS).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


NOVA_DRIVER_SHIM = (
    '"""Written by the stackferry lab: nova loads a compute driver from nova.virt only."""\n'
    "from stackferry_lab_plugins.nova_disks import DiskFakeDriver  # noqa: F401\n"
)


def _nova_driver_shim(paths: LabPaths) -> None:
    """``compute_driver = lab_disks.DiskFakeDriver``: a module in nova.virt that names the
    lab's driver (nova prefixes every driver name with ``nova.virt.``)."""
    for virt in paths.venv.glob("lib/python3*/site-packages/nova/virt"):
        shim = virt / "lab_disks.py"
        if not shim.exists() or shim.read_text() != NOVA_DRIVER_SHIM:
            shim.write_text(NOVA_DRIVER_SHIM)


def debian_packages_missing() -> bool:
    return not (
        (RABBIT_BIN / "rabbitmq-server").exists()
        and (PG_BIN / "postgres").exists()
        and shutil.which("qemu-img")
        and shutil.which("epmd")
    )


def install(paths: LabPaths, say: Callable[[str], None]) -> bool:
    """Make sure everything is installed; return True if anything had to be installed."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.logs / "install.log"
    did_something = False
    if debian_packages_missing():
        say(f"apt-get install {' '.join(DEBIAN_PACKAGES)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        did_something = True
    marker = paths.venv / ".openstack-installed"
    wanted = hashlib.sha256(
        (CONSTRAINTS.read_text() + repr(OPENSTACK_PACKAGES)).encode()
    ).hexdigest()
    if not marker.exists() or marker.read_text() != wanted:
        say(f"pip install OpenStack into {paths.venv} (pinned by {CONSTRAINTS.name})")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(paths.venv)], check=True)
        pip = [str(paths.python), "-m", "pip", "install", "-q"]
        _run([*pip, "-U", "pip", "setuptools", "wheel"], log)
        _run([*pip, "-c", str(CONSTRAINTS), *OPENSTACK_PACKAGES], log)
        marker.write_text(wanted)
        did_something = True
    plugins_marker = paths.venv / ".plugins-installed"
    digest = _plugins_digest()
    if not plugins_marker.exists() or plugins_marker.read_text() != digest:
        say("install lab plug-ins (ML2 bind-all, file-backed cinder driver, WSGI server)")
        _run(
            [
                str(paths.python),
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
                "--no-build-isolation",
                str(PLUGINS),
            ],
            log,
        )
        shutil.rmtree(PLUGINS / "build", ignore_errors=True)
        plugins_marker.write_text(digest)
        did_something = True
    _nova_driver_shim(paths)
    paths.shim_bin.mkdir(parents=True, exist_ok=True)
    shim = paths.shim_bin / "sudo"
    shim.write_text(SUDO_SHIM)
    shim.chmod(0o755)
    return did_something
