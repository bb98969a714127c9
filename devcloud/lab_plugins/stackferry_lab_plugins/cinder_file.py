"""Cinder volume driver that keeps each volume as a sparse raw file: real bytes, no LVM.

The lab's kernel has no device-mapper and no iSCSI, so the LVM driver cannot work. Volumes,
snapshots and clones are files in ``file_volume_dir``; image<->volume copies go through cinder's
own ``image_utils`` (qemu-img), and attachments use os-brick's ``local`` connector.
"""

import os

from cinder.image import image_utils
from cinder.volume import driver
from oslo_concurrency import processutils
from oslo_config import cfg

GIB = 1024**3
file_opts = [
    cfg.StrOpt("file_volume_dir", default="cinder-volumes", help="Directory holding volume files.")
]
cfg.CONF.register_opts(file_opts, group="backend_defaults")


class FileVolumeDriver(driver.VolumeDriver):  # type: ignore[misc]
    VERSION = "1.0"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(file_opts)
        self._dir = self.configuration.file_volume_dir
        self._stats: dict[str, object] = {}

    # -- paths -------------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self._dir, name)

    def local_path(self, volume) -> str:  # type: ignore[no-untyped-def]
        return self._path(volume.name)

    def _copy_sparse(self, src: str, dst: str) -> None:
        processutils.execute("cp", "--sparse=always", src, dst)

    def _truncate(self, path: str, size_gb: int) -> None:
        with open(path, "r+b" if os.path.exists(path) else "wb") as f:
            f.truncate(size_gb * GIB)

    def _remove(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)

    # -- lifecycle ---------------------------------------------------------------------------
    def do_setup(self, context) -> None:  # type: ignore[no-untyped-def]
        os.makedirs(self._dir, exist_ok=True)

    def check_for_setup_error(self) -> None:
        if not os.access(self._dir, os.W_OK):
            raise RuntimeError(f"volume directory {self._dir} is not writable")

    def create_volume(self, volume) -> None:  # type: ignore[no-untyped-def]
        self._truncate(self.local_path(volume), volume.size)

    def delete_volume(self, volume) -> None:  # type: ignore[no-untyped-def]
        self._remove(self.local_path(volume))

    def extend_volume(self, volume, new_size) -> None:  # type: ignore[no-untyped-def]
        self._truncate(self.local_path(volume), new_size)

    def create_snapshot(self, snapshot) -> None:  # type: ignore[no-untyped-def]
        self._copy_sparse(self.local_path(snapshot.volume), self._path(snapshot.name))

    def delete_snapshot(self, snapshot) -> None:  # type: ignore[no-untyped-def]
        self._remove(self._path(snapshot.name))

    def create_volume_from_snapshot(self, volume, snapshot) -> None:  # type: ignore[no-untyped-def]
        self._copy_sparse(self._path(snapshot.name), self.local_path(volume))
        if volume.size > snapshot.volume_size:
            self._truncate(self.local_path(volume), volume.size)

    def create_cloned_volume(self, volume, src_vref) -> None:  # type: ignore[no-untyped-def]
        self._copy_sparse(self.local_path(src_vref), self.local_path(volume))
        if volume.size > src_vref.size:
            self._truncate(self.local_path(volume), volume.size)

    # -- images ------------------------------------------------------------------------------
    def copy_image_to_volume(self, context, volume, image_service, image_id, disable_sparse=False):  # type: ignore[no-untyped-def]
        image_utils.fetch_to_raw(
            context,
            image_service,
            image_id,
            self.local_path(volume),
            self.configuration.volume_dd_blocksize,
            size=volume.size,
            run_as_root=False,
        )
        # qemu-img replaces the file with one as long as the image: give the volume its size back.
        self._truncate(self.local_path(volume), volume.size)

    def copy_volume_to_image(self, context, volume, image_service, image_meta):  # type: ignore[no-untyped-def]
        image_utils.upload_volume(
            context, image_service, image_meta, self.local_path(volume), run_as_root=False
        )

    # -- exports and attachments: the file is the device -------------------------------------
    def ensure_export(self, context, volume) -> None:  # type: ignore[no-untyped-def]
        pass

    def create_export(self, context, volume, connector) -> None:  # type: ignore[no-untyped-def]
        pass

    def remove_export(self, context, volume) -> None:  # type: ignore[no-untyped-def]
        pass

    def initialize_connection(self, volume, connector):  # type: ignore[no-untyped-def]
        return {"driver_volume_type": "local", "data": {"device_path": self.local_path(volume)}}

    def terminate_connection(self, volume, connector, **kwargs) -> None:  # type: ignore[no-untyped-def]
        pass

    # -- scheduler stats ---------------------------------------------------------------------
    def get_volume_stats(self, refresh: bool = False) -> dict[str, object]:
        if refresh or not self._stats:
            fs = os.statvfs(self._dir)
            self._stats = {
                "volume_backend_name": self.configuration.safe_get("volume_backend_name") or "file",
                "vendor_name": "stackferry-lab",
                "driver_version": self.VERSION,
                "storage_protocol": "local",
                "total_capacity_gb": fs.f_blocks * fs.f_frsize // GIB,
                "free_capacity_gb": fs.f_bavail * fs.f_frsize // GIB,
                "reserved_percentage": 0,
                "thin_provisioning_support": True,
                "max_over_subscription_ratio": 20.0,
                "multiattach": False,
            }
        return self._stats
