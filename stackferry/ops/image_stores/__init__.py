"""Move Glance images from one storage backend to another inside one cloud.

Glance multi-store does the work: the interoperable image import's ``copy-image`` method copies
an image's bytes into another store under the same image ID, and ``DELETE /v2/stores/{store}/
{image}`` drops one store's copy. Glance checks size, checksum and multihash of the bytes it
writes against the image record before it adds the new location, and refuses to drop the last
copy of an image; stackferry adds its own check that nothing but glance's bookkeeping changed
before it removes the old copy.

Every run starts from what the cloud says now (one decision per image, from its ``stores`` and
``os_glance_*`` fields), so it is idempotent and finishes what an interrupted run left: an image
already only on the target is skipped, one on both stores only has its old copy removed, one
with an import in flight is waited for. The ID and every property are kept; protected images
are moved too (moving never deletes the image, and glance drops a store's copy of a protected
image without unprotecting it).

Glance without multi-store (``GET /v2/info/stores`` answers 404) is refused with what to enable:
the legacy locations-API method (show_multiple_locations) is not implemented.

The rooms: ``decide`` (what to do with an image, from what glance shows: pure), ``api`` (the
calls moving needs, on the glance client), ``select`` (which images, and the checks before
anything moves), ``mover`` (carrying it out, a bounded pool).
"""
