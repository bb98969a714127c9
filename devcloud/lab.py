"""Bring the two-cloud lab up, report its state, and take it down."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from devcloud import ceph, health, infra, install, seed, services
from devcloud.layout import CLOUDS, Cloud, LabPaths, default_lab_dir
from devcloud.procs import ProcessTable, group_rss_bytes

Say = Callable[[str], None]

NOVA_SERVICE_DOWN_TIME = 65  # nova's service_down_time (60 s) and a heartbeat's margin

# In start order; nova last, once placement and neutron answer. Each starts only what is not
# already running, so calling them again restarts exactly the processes that died.
SERVICE_STARTERS = (
    services.glance,
    services.placement,
    services.neutron,
    services.cinder,
    services.nova,
)


class Lab:
    def __init__(self, root: Path | None = None, say: Say = print) -> None:
        self.paths = LabPaths(root or default_lab_dir())
        self.procs = ProcessTable(self.paths.pids)
        self._t0 = time.monotonic()
        self._say = say

    def say(self, message: str) -> None:
        self._say(f"[{time.monotonic() - self._t0:5.0f}s] {message}")

    @property
    def ceph_marker(self) -> Path:
        """Present once the lab was brought up with Ceph: later ``up`` calls keep it."""
        return self.paths.root / "ceph.enabled"

    @property
    def has_ceph(self) -> bool:
        return self.ceph_marker.exists()

    def clusters(self) -> list[ceph.Cluster]:
        return ceph.clusters(self.paths, CLOUDS) if self.has_ceph else []

    def _context(self, cloud: Cloud) -> services.Context:
        ctx = services.Context(self.paths, self.procs, cloud, ceph=self.has_ceph)
        for path in (ctx.state, ctx.logs, ctx.state / "lock"):
            path.mkdir(parents=True, exist_ok=True)
        return ctx

    def up(self, timeout: float = 600, with_ceph: bool = False) -> dict[str, float]:
        """Install if needed and start both clouds; harmless when they already run.
        ``with_ceph`` adds a Ceph cluster per cloud (kept by later calls)."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.root.chmod(0o755)  # postgres runs as its own user and must reach pg/
        t_install = time.monotonic()
        installed = install.install(self.paths, self.say)
        install_seconds = time.monotonic() - t_install
        if installed:
            self.say(f"installed in {install_seconds:.0f}s")
        t_start = time.monotonic()
        infra.start_postgres(self.paths, self.procs)
        infra.start_rabbitmq(self.paths, self.procs)
        self.say("postgres and rabbitmq up")
        if with_ceph and not self.has_ceph:
            self._enable_ceph()
        for cluster in self.clusters():
            ceph.start(cluster, self.procs, self.say, timeout)
            self.say(cluster.summary())
        contexts = [self._context(cloud) for cloud in CLOUDS]
        for ctx in contexts:
            services.keystone(ctx)
        seed.write_clouds_yaml(self.paths.clouds_yaml)
        for ctx in contexts:
            health.wait_api(ctx.cloud, "keystone", timeout)
            seed.seed_identity(self.paths.clouds_yaml, ctx.cloud)
            self.say(f"{ctx.cloud.name} keystone up and seeded")
        for ctx in contexts:
            for start in SERVICE_STARTERS[:-1]:
                start(ctx)
        for ctx in contexts:
            health.wait_api(ctx.cloud, "placement", timeout)
            health.wait_api(ctx.cloud, "neutron", timeout)
            services.nova(ctx)
        self.say("all services started; waiting until both clouds are healthy")
        for ctx in contexts:
            for service in ("glance", "nova", "cinder"):
                health.wait_api(ctx.cloud, service, timeout)
            state = self._wait_healthy(ctx, timeout)
            seed.seed_resources(self.paths.clouds_yaml, ctx.cloud, ceph=ctx.ceph)
            self.say(state.summary())
        start_seconds = time.monotonic() - t_start
        timings = {
            "install_seconds": round(install_seconds, 1),
            "start_seconds": round(start_seconds, 1),
            "installed": installed,
        }
        self.paths.timings.write_text(json.dumps(timings))
        self.say(
            f"lab up: install {install_seconds:.0f}s, start {start_seconds:.0f}s; "
            f"OS_CLIENT_CONFIG_FILE={self.paths.clouds_yaml}"
        )
        return timings

    def _enable_ceph(self) -> None:
        """Packages and bindings once; cinder restarted if it runs without its RBD backend."""
        if ceph.install(self.say):
            self.say("ceph packages installed")
        ceph.link_bindings(self.paths.python)
        self.ceph_marker.touch()
        cinder = {f"{cloud.name}-cinder-{s}" for cloud in CLOUDS for s in ("volume", "scheduler")}
        self.procs.stop(cinder, log=self.say)

    def _wait_healthy(self, ctx: services.Context, timeout: float) -> health.Health:
        """Wait for one cloud; restart, once, what died or (half-way) its nova if not healthy.

        A CI run once saw a cloud's nova scheduler exit and its computes never report up, where
        every other run came up: the lab retries before giving up, and shows what the failing
        processes logged either way."""
        deadline = time.monotonic() + timeout
        restart_at = time.monotonic() + timeout / 2
        restarted = False
        trust_at = 0.0
        while True:
            state = health.check(self.paths.clouds_yaml, ctx.cloud)
            dead = self._dead(ctx)  # nova reports a service down only a minute after it died
            if state.healthy and not dead and time.monotonic() > trust_at:
                return state
            now = time.monotonic()
            if now > deadline:
                self._show_failures(ctx, dead)
                raise TimeoutError(f"not healthy after {timeout:.0f}s: {state.summary()}")
            if not restarted and (dead or now > restart_at):
                restarted = True
                self.say(f"{state.summary()}: restarting what died and {ctx.cloud.name}'s nova")
                self._show_failures(ctx, dead)
                prefix = f"{ctx.cloud.name}-nova-"
                nova = {e.name for e in self.procs.entries() if e.name.startswith(prefix)}
                self.procs.stop(nova, log=self.say)
                for start in SERVICE_STARTERS:
                    start(ctx)
                # nova shows a service up for a minute after its last heartbeat: what the
                # stopped processes reported must age out before "up" means the new ones
                trust_at = time.monotonic() + NOVA_SERVICE_DOWN_TIME
            time.sleep(3)

    def _dead(self, ctx: services.Context) -> list[str]:
        prefix = f"{ctx.cloud.name}-"
        entries = [e for e in self.procs.entries() if e.name.startswith(prefix)]
        return sorted({e.name for e in entries} - {e.name for e in entries if e.alive()})

    def _show_failures(self, ctx: services.Context, dead: list[str]) -> None:
        """What died, with the end of its log, and the last errors the others logged."""
        if dead:
            self.say(f"exited: {', '.join(dead)}")
        prefix = len(f"{ctx.cloud.name}-")
        for log in sorted(path for path in ctx.logs.glob("*") if path.is_file()):
            lines = log.read_text(errors="replace").splitlines()
            died = any(log.name.startswith(name[prefix:] + ".") for name in dead)
            shown = lines if died else [x for x in lines if " ERROR " in x or "CRITICAL" in x]
            if shown[-15:]:
                self.say(f"--- {log}: last {'lines' if died else 'errors'}")
                for line in shown[-15:]:
                    self._say("    " + line[:400])

    def down(self, purge: bool = False) -> None:
        """Stop exactly the processes this lab started, by PID; ``purge`` also drops all state."""
        infra_names = {"postgres", "rabbitmq", "epmd"}  # ceph daemons go with the services
        service_names = {e.name for e in self.procs.entries()} - infra_names
        self.procs.stop(service_names, log=self.say)  # first the clients of the infrastructure
        # SIGINT is postgres' "fast" shutdown: clean, without waiting for idle clients.
        self.procs.stop(infra_names, signals={"postgres": signal.SIGINT}, log=self.say)
        self.paths.pids.unlink(missing_ok=True)
        if purge:
            for cloud in CLOUDS:
                shutil.rmtree(self.paths.root / cloud.name, ignore_errors=True)
            for path in (self.paths.pg_data.parent, self.paths.rabbit_home, self.paths.logs):
                shutil.rmtree(path, ignore_errors=True)
            for path in (self.paths.clouds_yaml, self.paths.timings):
                path.unlink(missing_ok=True)
            self.say("state purged (the OpenStack virtualenv is kept)")

    def processes(self) -> list[tuple[str, int, bool, int]]:
        """(name, pid, alive, RSS bytes) of every process the lab recorded."""
        return [
            (e.name, e.pid, e.alive(), group_rss_bytes(e.pid) if e.alive() else 0)
            for e in self.procs.entries()
        ]

    def health(self) -> list[health.Health]:
        return [health.check(self.paths.clouds_yaml, cloud) for cloud in CLOUDS]

    def is_healthy(self) -> bool:
        return (
            bool(self.procs.entries())
            and all(h.healthy for h in self.health())
            and all(c.healthy() for c in self.clusters())
        )
