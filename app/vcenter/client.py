"""The controller's client of the VM manager ("vCenter"): asks it for VSI type profiles and VM
registrations the controller does not know, caches the answers, and never makes the
controller's event thread wait on HTTP.

Two ways to ask:

* ``request(query)`` (the event thread): the cached answer, or None while ONE background lookup
  per query runs on a small worker pool; when it ends, the answer is cached and
  ``on_done(query, result)`` is called on the worker thread, so the controller can replay what
  it parked (hand the call over to the event thread; do not block in it). Once ``on_done`` ran,
  ``request`` returns that answer until it expires, so a replay finds it.
* ``lookup_profile`` / ``lookup_vm`` (other threads, e.g. REST): the same, waiting for the
  answer in the calling thread (at most ``timeout``).

An answer is ``found`` (the profile or VM, checked by the very parsers of the controller's REST
API, app/registry: a profile obeys the rules of a policy file), ``not_found`` (the manager
answered 404) or ``unreachable`` (no answer within ``timeout``, refused, an HTTP error, bad JSON
or an invalid profile or VM: ``reason`` says which and names the field). Found answers are
cached for ``ttl`` seconds; not-found and unreachable ones for ``negative_ttl``, so a dead
manager is not asked again for every station request. An expired answer is asked for again
(no stale answers are served).

The manager's resources are described in docs/vcenter.md.
"""

import dataclasses
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey, VsiTypeProfile
from app.registry.documents import parse_profile
from app.registry.errors import InvalidInput, RegistryError
from app.registry.vms import VmRecord, parse_vm, parse_vsi_id
from app.vcenter.credentials import CredentialError
from app.vcenter.transport import TransportError, error_text, exchange, parse_json
from app.vdp.authorizer import ProfileRefused, VsiManagerUnreachable

LOG = logging.getLogger("evb_nms.vcenter")


class LookupStatus(str, Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class LookupResult:
    """``value``: the VsiTypeProfile or VmRecord (app/registry/vms.py) when found, else None."""

    status: LookupStatus
    value: Any = None
    reason: str = ""

    @property
    def found(self) -> bool:
        return self.status is LookupStatus.FOUND


@dataclass(frozen=True)
class ProfileQuery:
    """A VSI type as a station named it; ``manager_id`` normalized (manager_id_from_octets).
    The manager sees it and may scope its answer by it."""

    type_id: int
    version: int
    manager_id: str

    @property
    def key(self) -> VsiTypeKey:
        return VsiTypeKey(self.type_id, self.version)

    def path(self) -> str:
        query = urllib.parse.urlencode({"manager": self.manager_id})
        return f"/v1/vsi-types/{self.type_id}/{self.version}?{query}"

    def parse(self, data: Any, source: str) -> VsiTypeProfile:
        profile = dataclasses.replace(parse_profile(data), source_file=source)
        if profile.key != self.key:
            raise InvalidInput(
                f"asked for {self.key}, the manager answered {profile.key}", "type_id"
            )
        return profile


@dataclass(frozen=True)
class VmQuery:
    """A VM by its VSI ID as text (vsi_id_text); a UUID in any spelling is normalized."""

    vsi_id: str

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "vsi_id", parse_vsi_id(self.vsi_id))
        except InvalidInput:
            pass  # not a UUID: the manager cannot know it, and will say so

    def path(self) -> str:
        return f"/v1/vms/{urllib.parse.quote(self.vsi_id, safe='')}"

    def parse(self, data: Any, source: str) -> VmRecord:
        return parse_vm(data, "", _tenant_required, vsi_id=self.vsi_id)


def _tenant_required(key: VsiTypeKey) -> None:
    """parse_vm asks for the tenant of the VM's type when the body leaves it out; the
    controller's database may not know the type, so the manager must say it."""
    raise InvalidInput("required field is missing", "tenant")


Query = ProfileQuery | VmQuery
OnDone = Callable[[Query, LookupResult], None]


class LookupPending(Exception):
    """Raised by ``VcenterClient.profile_lookup`` while the manager is being asked: park the
    request and replay it when ``on_done`` is called for ``query``."""

    def __init__(self, query: ProfileQuery) -> None:
        super().__init__(f"asking the VM manager about {query.key}")
        self.query = query


class VcenterClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 1.0,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_done: OnDone | None = None,
        workers: int = 4,
        max_pending: int = 64,
        max_cached: int = 4096,
        token: Callable[[], str | None] = lambda: None,
        vet: Callable[[VsiTypeProfile], str | None] = lambda profile: None,
    ) -> None:
        """``clock`` times the cache only; ``timeout`` is always real time. ``max_pending``
        bounds the lookups running or waiting for a worker: beyond it ``request`` answers
        unreachable at once (not cached). ``token()``: the bearer token sent on each lookup
        (read at each one, so a rotated token file takes effect; None: none sent). ``vet(profile)``:
        why a found profile may not be used now, None if it may (the registry's tenant rules:
        VLAN pool, other tenants' VLANs, profile quota), asked at every use."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"vcenter URL: expected http://HOST:PORT, got {base_url!r}")
        for name, value in (("timeout", timeout), ("ttl", ttl), ("negative_ttl", negative_ttl)):
            if not value > 0:
                raise ValueError(f"{name}: expected seconds > 0, got {value!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._on_done = on_done
        self._token = token
        self._vet = vet
        self._max_pending = max_pending
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._cache: dict[Query, tuple[LookupResult, float]] = {}
        self._pending: set[Query] = set()
        self._counts = {status.value: 0 for status in LookupStatus}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vcenter")

    # asynchronous: the event thread ------------------------------------------------------

    def request(self, query: Query) -> LookupResult | None:
        """The cached answer, or None after starting (or while running) the one background
        lookup of ``query``. Never blocks on the network."""
        with self._lock:
            cached = self._cached(query)
            if cached is not None or query in self._pending:
                return cached
            if len(self._pending) >= self._max_pending:
                return LookupResult(
                    LookupStatus.UNREACHABLE,
                    reason=f"{self._max_pending} lookups to the VM manager are already in progress",
                )
            self._pending.add(query)
        try:
            self._pool.submit(self._background, query)
        except RuntimeError:  # closed
            with self._lock:
                self._pending.discard(query)
            return LookupResult(LookupStatus.UNREACHABLE, reason="the VM manager client is closed")
        return None

    def profile_lookup(
        self, database: VsiTypeDatabase, manager_id: str, key: VsiTypeKey
    ) -> VsiTypeProfile | None:
        """The authorizer's ProfileLookup (app/vdp/authorizer.py): the database first, then
        the manager. Raises LookupPending while asking, VsiManagerUnreachable when it could
        not get an answer, ProfileRefused when the answer breaks the tenant's rules (``vet``)."""
        profile = database.get(key.type_id, key.version)
        if profile is not None:
            return profile
        query = ProfileQuery(key.type_id, key.version, manager_id)
        result = self.request(query)
        if result is None:
            raise LookupPending(query)
        if result.status is LookupStatus.UNREACHABLE:
            raise VsiManagerUnreachable(result.reason)
        if result.value is not None:
            # Asked at each use, not cached: pools and the database change under the answer.
            refusal = self._vet(result.value)
            if refusal is not None:
                raise ProfileRefused(refusal)
        return result.value

    def _background(self, query: Query) -> None:
        result = self._fetch(query)
        with self._lock:
            self._pending.discard(query)
        if self._on_done is not None:
            try:
                self._on_done(query, result)
            except Exception:  # the controller's bug must not kill the worker
                LOG.exception("vcenter on_done failed for %s", query)

    # synchronous: other threads ----------------------------------------------------------

    def lookup_profile(self, type_id: int, version: int, manager_id: str) -> LookupResult:
        return self.lookup(ProfileQuery(type_id, version, manager_id))

    def lookup_vm(self, vsi_id: str) -> LookupResult:
        return self.lookup(VmQuery(vsi_id))

    def lookup(self, query: Query) -> LookupResult:
        """The cached answer, else asks the manager in the calling thread (at most
        ``timeout``)."""
        with self._lock:
            cached = self._cached(query)
        return cached if cached is not None else self._fetch(query)

    # both ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """For health views: the manager's URL, answers by status since start, cache size,
        lookups in progress."""
        with self._lock:
            return {
                "url": self.base_url,
                "answers": dict(self._counts),
                "cached": len(self._cache),
                "in_progress": len(self._pending),
            }

    def close(self) -> None:
        """Stops the workers; lookups in progress end within ``timeout``, without on_done, and
        ``request`` answers unreachable from now on (the cache aside)."""
        self._on_done = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._pending.clear()  # cancelled lookups would stay "in progress" for ever

    def _fetch(self, query: Query) -> LookupResult:
        """Asks the manager and caches the answer. Never raises."""
        url = self.base_url + query.path()
        try:
            result = self._ask(query, url)
        except Exception as err:  # a bug here must still give the station an answer
            LOG.exception("vcenter lookup %s failed", url)
            result = LookupResult(LookupStatus.UNREACHABLE, reason=f"{url}: {err!r}")
        if not result.found:
            LOG.info("vcenter %s: %s", result.status.value, result.reason)
        with self._lock:
            self._counts[result.status.value] += 1
            self._store(query, result)
        return result

    def _ask(self, query: Query, url: str) -> LookupResult:
        try:
            token = self._token()
            headers = {"Authorization": f"Bearer {token}"} if token else None
            answer = exchange("GET", url, timeout=self.timeout, headers=headers)
        except (TransportError, CredentialError) as err:
            return LookupResult(LookupStatus.UNREACHABLE, reason=f"{url}: {err}")
        if answer.status == 404:
            return LookupResult(
                LookupStatus.NOT_FOUND, reason=f"{url}: not found{error_text(answer.body)}"
            )
        if answer.status != 200:
            return LookupResult(
                LookupStatus.UNREACHABLE,
                reason=f"{url}: HTTP {answer.status}{error_text(answer.body)}",
            )
        try:
            data = parse_json(answer.body)
        except ValueError as err:
            return LookupResult(LookupStatus.UNREACHABLE, reason=f"{url}: bad JSON: {err}")
        try:
            value = query.parse(data, url)
        except RegistryError as err:
            return LookupResult(LookupStatus.UNREACHABLE, reason=f"{url}: invalid answer: {err}")
        return LookupResult(LookupStatus.FOUND, value)

    def _cached(self, query: Query) -> LookupResult | None:
        entry = self._cache.get(query)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._cache[query]
            return None
        return entry[0]

    def _store(self, query: Query, result: LookupResult) -> None:
        now = self._clock()
        if len(self._cache) >= self._max_cached and query not in self._cache:
            for stale in [q for q, (_, expires) in self._cache.items() if now >= expires]:
                del self._cache[stale]
            if len(self._cache) >= self._max_cached:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache.pop(query, None)  # re-insert: dict order is age order
        self._cache[query] = (result, now + (self._ttl if result.found else self._negative_ttl))
