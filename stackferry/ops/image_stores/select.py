"""Which images, and the checks made before anything moves (stores, import method, project)."""

from __future__ import annotations

from collections.abc import Iterable

from stackferry.errors import StackferryError
from stackferry.ops.image_stores.api import ImageApi
from stackferry.ops.image_stores.decide import COPY_METHOD, UUID, Image, store_list

# --- checks before anything is done ----------------------------------------------------------


def check_stores(api: ImageApi, cloud: str, source: str, target: str) -> list[str]:
    """The cloud's store names, once the move is known possible; else a StackferryError naming
    what is missing."""
    if source == target:
        raise StackferryError(f"--from and --to are both {source}: nothing to move")
    stores = api.stores()
    if stores is None:
        raise StackferryError(
            f"cloud {cloud}: glance does not run multi-store (GET /v2/info/stores answers 404), "
            "which moving images between stores needs. Enable it in glance-api.conf: "
            "[DEFAULT] enabled_backends = <name>:<type>, ... (the old and the new backend), "
            "[glance_store] default_backend = <name>, one section per backend with its "
            "settings, and copy-image in [DEFAULT] enabled_import_methods. (Moving through "
            "the legacy locations API, show_multiple_locations = True, is not supported.)"
        )
    names = [str(s.get("id")) for s in stores]
    listed = ", ".join(
        f"{s.get('id')} (default)" if str(s.get("default")).lower() == "true" else str(s.get("id"))
        for s in stores
    )
    unknown = [s for s in (source, target) if s not in names]
    if unknown:
        raise StackferryError(
            f"cloud {cloud}: unknown store {', '.join(unknown)}; its glance has the stores "
            f"{listed or '(none)'}"
        )
    methods = api.import_methods()
    if COPY_METHOD not in methods:
        raise StackferryError(
            f"cloud {cloud}: glance does not offer the {COPY_METHOD} import method (it offers "
            f"{', '.join(methods) or 'none'}). Add {COPY_METHOD} to [DEFAULT] "
            "enabled_import_methods in glance-api.conf."
        )
    return names


def select_images(
    api: ImageApi,
    source: str,
    target: str,
    owner: str | None = None,
    refs: Iterable[str] = (),
) -> list[Image]:
    """The images to look at, sorted by name: the ones named (by name or ID; each must exist,
    once, in the project if one is given), else every image on the source or target store."""
    refs = list(refs)
    if not refs:
        chosen = [
            i for i in api.images(owner=owner) if store_list(i) & {source, target}
        ]  # an image only on neither store is none of this command's business
    else:
        chosen_by_id: dict[str, Image] = {}
        for ref in refs:
            image = api.get(ref) if UUID.match(ref) else None
            matches = [image] if image else api.images(owner=owner, name=ref)
            if owner:
                matches = [i for i in matches if i.get("owner") == owner]
            if not matches:
                where = f" in project {owner}" if owner else ""
                raise StackferryError(f"no image {ref!r}{where}")
            if len(matches) > 1:
                ids = ", ".join(sorted(i["id"] for i in matches))
                raise StackferryError(f"several images are named {ref!r} ({ids}); give its ID")
            chosen_by_id[matches[0]["id"]] = matches[0]
        chosen = list(chosen_by_id.values())
    return sorted(chosen, key=lambda i: (str(i.get("name") or ""), i["id"]))
