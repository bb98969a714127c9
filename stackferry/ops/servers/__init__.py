"""Cold migration of servers inside one cloud: `servers migrate` and `hosts drain`.

Nova keeps all the state a cold migration needs: the server's status and task state, its host,
and a migration record (``os-migrations``) that goes pre-migrating → … → finished (the server in
VERIFY_RESIZE on its new host) → confirming/reverting → confirmed/reverted, or error. So there is
no journal: each server runs a small state machine that reads nova on every step and decides
from what it sees (:func:`decide`, pure and unit-tested). A re-run after an interruption
therefore finishes what was in flight — a server in VERIFY_RESIZE is confirmed (or reverted),
one in RESIZE is waited for — and never starts a second migration of a server that has one.

Drain finds its servers in two places, because a server in the middle of a migration may
already report its new host: the servers on the host, and the unfinished migrations whose
source is the host.

The rooms: ``nova`` (what nova says, through openstacksdk), ``decide`` (what to do from it,
pure), ``select`` (which servers), ``runner`` (one state machine per server, a bounded pool).
"""
