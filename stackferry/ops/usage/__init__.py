"""``stackferry usage``: the old cloud's usage statistics, archived before it goes.

Rooms: ``windows`` (dates, steps and their calendar windows: pure), ``nova`` (nova's
os-simple-tenant-usage, paged and summed, behind a protocol the unit tests fake), ``present``
(what the other services can only tell now: volumes, images, floating IPs, quotas),
``archive`` (reading it all and assembling the documents) and ``chart`` (the HTML page).
"""
