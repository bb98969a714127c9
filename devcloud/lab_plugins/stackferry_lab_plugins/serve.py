"""Serve an OpenStack service's WSGI application with gunicorn, bound to loopback.

usage: python -m stackferry_lab_plugins.serve NAME MODULE:ATTR PORT [APP ARGV...]

neutron and cinder read ``--config-file`` from ``sys.argv`` when their WSGI module is imported,
so ``sys.argv`` is replaced by ``[NAME, APP ARGV...]`` just before the import.
"""

import importlib
import sys

from gunicorn.app.base import BaseApplication


class _Service(BaseApplication):  # type: ignore[misc]
    def __init__(self, name: str, target: str, port: int, app_argv: list[str]) -> None:
        self._name, self._target, self._port, self._app_argv = name, target, port, app_argv
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": f"127.0.0.1:{self._port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": 8,
            "timeout": 600,
            "graceful_timeout": 5,
            # gunicorn's default of 2 s races with clients that poll every 2 s (openstacksdk's
            # wait_for_status): the server drops the idle connection just as the client reuses
            # it ("Remote end closed connection without response"). Front ends such as apache
            # or haproxy keep connections for about a minute.
            "keepalive": 75,
            "proc_name": self._name,
            "accesslog": "-",
            # gunicorn's control socket defaults to one path for every server: not wanted here.
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        sys.argv = [self._name, *self._app_argv]
        module, attr = self._target.split(":")
        return getattr(importlib.import_module(module), attr)


def main() -> None:
    name, target, port = sys.argv[1:4]
    _Service(name, target, int(port), sys.argv[4:]).run()


if __name__ == "__main__":
    main()
