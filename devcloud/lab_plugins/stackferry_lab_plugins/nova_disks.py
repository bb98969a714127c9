"""Nova's fake hypervisor, with real root disks: the lab's servers have bytes.

nova's ``FakeDriver`` keeps no disk and its ``snapshot`` uploads nothing, so a migration of a
server could not be checked byte for byte. This driver keeps each image-backed server's root
disk as a file, ``<root>/<compute host>/<server uuid>/disk``:

- spawn writes it from the server's image, through nova's image API (as libvirt does);
- a cold migration copies it to the destination host at ``finish_migration`` (the destination
  reads the source host's copy: both hosts are on one machine), ``confirm`` removes the
  source's copy, a revert keeps it and the destination's copy goes with its ``destroy``;
- ``snapshot`` uploads the file as the snapshot image's data (as libvirt does);
- ``destroy`` removes the host's copy.

A test writes into the file ("a guest write") and checks the destination's file later.
Boot-from-volume servers have no local disk: their bytes are cinder's.
"""

import os
import shutil

import nova.conf
from nova.compute import task_states
from nova.image import glance
from nova.virt import fake
from oslo_config import cfg
from oslo_log import log as logging

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
CONF.register_opts(
    [cfg.StrOpt("root", help="Folder of the compute hosts' server disks (one per host).")],
    group="lab_disks",
)


def disk_path(host: str, uuid: str) -> str:
    return os.path.join(CONF.lab_disks.root, host, uuid, "disk")


class DiskFakeDriver(fake.FakeDriverWithoutFakeNodes):  # type: ignore[misc]
    """FakeDriverWithoutFakeNodes whose image-backed servers have a root disk file."""

    def __init__(self, virtapi, read_only=False):  # type: ignore[no-untyped-def]
        super().__init__(virtapi, read_only)
        self._images = glance.API()

    def _disk(self, uuid: str) -> str:
        return disk_path(CONF.host, uuid)

    def _remove_disk(self, uuid: str) -> None:
        shutil.rmtree(os.path.dirname(self._disk(uuid)), ignore_errors=True)

    def _place(self, path: str, fill) -> None:  # type: ignore[no-untyped-def]
        """Write ``path`` whole or not at all: ``fill(partial_path)``, then renamed."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fill(path + ".part")
        os.replace(path + ".part", path)

    def spawn(self, context, instance, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().spawn(context, instance, *args, **kwargs)
        path = self._disk(instance.uuid)
        # An image-backed server only; a disk already here is kept (a hard reboot spawns again).
        if instance.image_ref and not os.path.exists(path):
            self._place(
                path,
                lambda part: self._images.download(context, instance.image_ref, dest_path=part),
            )

    def snapshot(self, context, instance, image_id, update_task_state):  # type: ignore[no-untyped-def]
        super().snapshot(context, instance, image_id, lambda **kw: None)
        path = self._disk(instance.uuid)
        if not os.path.exists(path):  # nothing to upload: nova's own fake behaviour
            update_task_state(task_state=task_states.IMAGE_UPLOADING)
            return
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        meta = instance.image_meta
        metadata = {
            "status": "active",
            "disk_format": meta.disk_format if meta.obj_attr_is_set("disk_format") else "raw",
            "container_format": (
                meta.container_format if meta.obj_attr_is_set("container_format") else "bare"
            ),
            "properties": {
                "image_location": "snapshot",
                "image_state": "available",
                "owner_id": instance.project_id,
            },
        }
        update_task_state(
            task_state=task_states.IMAGE_UPLOADING,
            expected_state=task_states.IMAGE_PENDING_UPLOAD,
        )
        with open(path, "rb") as data:
            self._images.update(context, image_id, metadata, data)

    def finish_migration(  # type: ignore[no-untyped-def]
        self, context, migration, instance, *args, **kwargs
    ):
        source = disk_path(migration.source_compute, instance.uuid)
        target = self._disk(instance.uuid)
        if os.path.exists(source) and source != target:
            self._place(target, lambda part: shutil.copyfile(source, part))
        super().finish_migration(context, migration, instance, *args, **kwargs)

    def destroy(  # type: ignore[no-untyped-def]
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        destroy_disks=True,
        destroy_secrets=True,
    ):
        super().destroy(
            context,
            instance,
            network_info,
            block_device_info=block_device_info,
            destroy_disks=destroy_disks,
            destroy_secrets=destroy_secrets,
        )
        if destroy_disks:
            self._remove_disk(instance.uuid)
