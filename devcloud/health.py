"""Readiness: every API answers, and the cloud can really serve (hosts, providers, volumes)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devcloud.layout import COMPUTES_PER_CLOUD, SERVICE_PORT_SUFFIX, Cloud
from devcloud.seed import connect


def api_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer (e.g. 401 without a token)
    except (OSError, ValueError):
        return False


def wait_api(cloud: Cloud, service: str, timeout: float) -> None:
    url = cloud.url(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api_answers(url):
            return
        time.sleep(1)
    raise TimeoutError(f"{cloud.name} {service} API ({url}) does not answer after {timeout:.0f}s")


@dataclass
class Health:
    cloud: str
    apis: dict[str, bool] = field(default_factory=dict)
    hypervisors_up: list[str] = field(default_factory=list)
    resource_providers: int = 0
    volume_services_up: list[str] = field(default_factory=list)
    compute_services_up: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def healthy(self) -> bool:
        return (
            all(self.apis.values())
            and len(self.hypervisors_up) >= COMPUTES_PER_CLOUD
            and self.resource_providers >= COMPUTES_PER_CLOUD
            and {"cinder-scheduler", "cinder-volume"} <= set(self.volume_services_up)
            and {"nova-scheduler", "nova-conductor"} <= set(self.compute_services_up)
        )

    def summary(self) -> str:
        if self.error:
            return f"{self.cloud}: {self.error}"
        down = [name for name, ok in self.apis.items() if not ok]
        return (
            f"{self.cloud}: APIs {'all answering' if not down else 'DOWN: ' + ', '.join(down)}; "
            f"hypervisors up {sorted(self.hypervisors_up)}; "
            f"resource providers {self.resource_providers}; "
            f"volume services up {sorted(self.volume_services_up)}; "
            f"nova services up {sorted(set(self.compute_services_up))}"
        )


def check(clouds_yaml: Path, cloud: Cloud) -> Health:
    health = Health(cloud.name, {s: api_answers(cloud.url(s)) for s in SERVICE_PORT_SUFFIX})
    if not all(health.apis.values()) or not clouds_yaml.exists():
        return health
    try:
        conn = connect(clouds_yaml, cloud.name)
        health.hypervisors_up = [h.name for h in conn.compute.hypervisors() if h.state == "up"]
        health.resource_providers = len(list(conn.placement.resource_providers()))
        health.volume_services_up = [
            s.binary
            for s in conn.block_storage.services()
            if s.state == "up" and s.status == "enabled"
        ]
        health.compute_services_up = [
            s.binary for s in conn.compute.services() if s.state == "up" and s.status == "enabled"
        ]
        conn.close()
    except Exception as exc:  # any failure here means "not healthy yet", with the reason shown
        health.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    return health


def wait_healthy(clouds_yaml: Path, cloud: Cloud, timeout: float) -> Health:
    deadline = time.monotonic() + timeout
    health = check(clouds_yaml, cloud)
    while not health.healthy and time.monotonic() < deadline:
        time.sleep(3)
        health = check(clouds_yaml, cloud)
    if not health.healthy:
        raise TimeoutError(f"not healthy after {timeout:.0f}s: {health.summary()}")
    return health
