"""One leader for the whole fabric, elected through etcd (docs/ha.md).

A candidate takes a lease and creates the key `P/leader` with it, in one transaction that
succeeds only if the key does not exist; the winner's **generation** is the key's create
revision, which grows with every election, so switches (OpenFlow role generation id) and the
store (a compare on the key's create revision) can tell a deposed leader from the current one.

The leader renews its lease every TTL/4 and checks that the key is still the one it created; a
lease that ended or a key that is not its own any more deposes it (`on_deposed`): it must stop
acting at once. An etcd it cannot reach does not: safety never rests on the leader's timing
but on the fences (docs/ha.md), and while etcd is away from every controller none could take
over. A follower reads the key every PROBE_INTERVAL and campaigns when it
is gone. It also connects to the leader's REST port each time: a leader whose port refused the
connection after having accepted one is a dead process (kill -9 leaves no lease holder to wait
for), so the follower revokes its lease and the election runs at once instead of a TTL later. A
leader that is alive but cut off is replaced when its lease expires.

Callbacks run on the election's thread except `on_elected`, which gets a thread of its own: a
takeover may take longer than a renewal may wait."""

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.store.base import StoreError
from app.store.etcd_kv import EtcdKv, put_with_lease, same_create_revision

LOG = logging.getLogger("evb_nms.ha")
LEADER_KEY = "leader"
PROBE_INTERVAL = 0.1  # a follower's look at the key and at the leader's port
CONNECT_TIMEOUT = 0.5


@dataclass(frozen=True)
class Leader:
    id: str
    url: str
    lease: int
    generation: int  # the leader key's create revision

    def as_dict(self) -> dict:
        return {"id": self.id, "url": self.url, "generation": self.generation}


def leader_key(prefix: str) -> str:
    return prefix.rstrip("/") + "/" + LEADER_KEY


def parse_leader(value: bytes, create_revision: int) -> Leader | None:
    """The leader a key names; None for a value that is not ours (logged by the caller)."""
    try:
        doc = json.loads(value)
        return Leader(str(doc["id"]), str(doc["url"]), int(doc["lease"]), create_revision)
    except (ValueError, TypeError, KeyError):
        return None


def leader_value(controller_id: str, url: str, lease: int) -> bytes:
    return json.dumps({"id": controller_id, "url": url, "lease": str(lease)}).encode()


def refused(url: str) -> bool | None:
    """Whether the REST port of `url` refused a connection now (True), accepted it (False), or
    neither (None: a timeout or an unreachable network says nothing of the process)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return None


class Election:
    def __init__(
        self,
        kv: EtcdKv,
        prefix: str,
        controller_id: str,
        url: str,
        ttl: int,
        on_elected: Callable[[int], None],
        on_leader: Callable[[Leader | None], None],
        on_deposed: Callable[[str], None],
    ):
        """`kv` answers within about ttl/2 (its own client: the store's may wait longer);
        `on_elected(generation)`: this controller leads; `on_leader(leader)`: another one does
        (None: none is known); `on_deposed(reason)`: this controller led and must stop."""
        self._kv, self._key = kv, leader_key(prefix)
        self.id, self.url, self._ttl = controller_id, url, ttl
        self._on_elected, self._on_leader, self._on_deposed = on_elected, on_leader, on_deposed
        self.leader: Leader | None = None
        self.leading = False
        self.revoked = 0  # leases of dead leaders revoked by the fast path
        self._lease: int | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-election", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """A leader stopping gives its place at once: its lease revoked, the key goes with it."""
        self._stopping.set()
        self._thread.join(timeout=2 * self._ttl)
        if self.leading and self._lease is not None:
            try:
                self._kv.revoke(self._lease)
            except StoreError as err:
                LOG.warning(
                    "leader lease not revoked (a successor waits for it to expire): %s", err
                )

    def status(self) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "role": "leader" if self.leading else "follower",
            "leader": self.leader.as_dict() if self.leader else None,
            "lease_ttl": self._ttl,
        }

    # the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                leader = self._read()
                if leader is None:
                    self._campaign()
                elif leader.id == self.id:
                    # Our own key from before a restart: its process is gone, as we are it.
                    LOG.warning(
                        "leader key of a previous %s (lease %x) revoked", self.id, leader.lease
                    )
                    self._kv.revoke(leader.lease)
                else:
                    self._follow(leader)
            except StoreError as err:
                LOG.warning("leader election: %s", err)
                self._stopping.wait(PROBE_INTERVAL)

    def _read(self) -> Leader | None:
        found = self._kv.get(self._key, "create_revision")
        if found is None:
            return None
        value, create_revision = found
        leader = parse_leader(value, create_revision)
        if leader is None:
            raise StoreError(f"{self._key}: not a leader record: {value[:100]!r}")
        return leader

    def _campaign(self) -> None:
        lease, granted = self._kv.grant(self._ttl)
        response = self._kv.txn(
            [put_with_lease(self._key, leader_value(self.id, self.url, lease), lease)],
            [same_create_revision(self._key, 0)],
        )
        if not response.get("succeeded"):
            self._kv.revoke(lease)  # lost the race: the winner's key is read next round
            return
        generation = int(response["header"]["revision"])
        self._lease, self.leading = lease, True
        self.leader = Leader(self.id, self.url, lease, generation)
        LOG.info("elected leader, generation %d (lease %x, %d s)", generation, lease, granted)
        threading.Thread(
            target=self._on_elected, args=(generation,), name="ha-takeover", daemon=True
        ).start()
        self._lead(lease, generation, granted)

    def _lead(self, lease: int, generation: int, ttl: int) -> None:
        unreachable = False
        while not self._stopping.wait(ttl / 4):
            try:
                left = self._kv.keepalive(lease)
                current = self._read()
            except StoreError as err:
                # Not a reason to stop: no other controller can be elected while etcd is away
                # from all, and one elected meanwhile is protected by the fences, not by our
                # timing; the stations' keep-alives are answered meanwhile.
                if not unreachable:
                    LOG.warning("leader lease not renewed, still leading: %s", err)
                unreachable = True
                continue
            unreachable = False
            if left <= 0:
                reason = "the leader lease has ended"
            elif current is None or current.generation != generation:
                reason = "the leader key is no longer ours"
            else:
                continue
            self.leading = False
            self._on_deposed(reason)
            return

    def _follow(self, leader: Leader) -> None:
        if leader != self.leader:
            self.leader = leader
            LOG.info(
                "following leader %s (%s), generation %d", leader.id, leader.url, leader.generation
            )
            self._on_leader(leader)
        reachable = False
        while not self._stopping.wait(PROBE_INTERVAL):
            current = self._read()
            if current != leader:
                if current is None:
                    self.leader = None
                    self._on_leader(None)
                return
            answer = refused(leader.url)
            if answer is False:
                reachable = True
            elif answer and reachable:
                LOG.warning("leader %s refuses connections: its lease revoked", leader.id)
                self._kv.revoke(leader.lease)
                self.revoked += 1
                self.leader = None
                self._on_leader(None)
                return  # to the campaign at once
