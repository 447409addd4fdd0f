"""What the operator and the VM manager can ask of the running controller: the one facade the
REST layer (app/rest) calls. Every method is thread-safe (it takes the control plane's lock) and
sends what the change requires to the switches and stations itself.

VSI IDs are given and returned as text (app.vdp.describe.vsi_id_text: a UUID for UUID VSI IDs).
"""

from collections.abc import Callable
from typing import Any, Protocol

from app.policy.database import VsiTypeDatabase


class NmsService(Protocol):
    # views ---------------------------------------------------------------------------------
    def switches(self) -> list[dict[str, Any]]:
        """Connected switches: dpid, name, state, ports, punt counters."""

    def links(self) -> list[dict[str, Any]]:
        """Inter-switch links as discovered: {"a": "edge1/edge1-up1", "b": "agg1/agg1-dn1"}."""

    def stations(self) -> list[dict[str, Any]]:
        """Per server port with a station: EVB agreement, ECP state, counters."""

    def probes(self) -> list[dict[str, Any]]:
        """Per probed path (VLAN, from edge, to edge): probes sent, received, lost, latency,
        state (app/fabric/probes.py)."""

    def vsi_counts(self) -> dict[str, dict[str, int]]:
        """VSI attachments held {"by_switch": {name: n}, "by_tenant": {tenant: n}}; costs the
        ports and the VSI types in use, not the VSIs."""

    def associations(self) -> list[dict[str, Any]]:
        """Every VSI the bridge holds: vsi_id, state, attachments (switch, port_no, port,
        state, manager_id, type_id, type_version, profile, tenant, entries [{mac, vid}])."""

    def associations_after(
        self, after: str | None, limit: int, keep: Callable[[dict[str, Any]], bool], scan: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of `associations`: at most `limit` VSIs after VSI ID `after` (None: from the
        first) in VSI ID order that `keep` accepts, looking at no more than `scan` VSIs; and the
        VSI ID the next page starts after (None: there is no VSI after these). Costs the VSIs
        looked at, not all of them."""

    def associations_of(self, vsi_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The VSIs of `vsi_ids` the bridge holds, as `associations` shows them, by VSI ID.
        Costs those VSIs."""

    def association(self, vsi_id: str) -> dict[str, Any] | None:
        """One VSI as `associations` shows it (by its VSI ID text); None if not held. Costs
        that VSI, not all of them."""

    def vm_stats(self, vsi_id: str) -> list[dict[str, Any]] | None:
        """One VSI's traffic counters per attachment, as its switch's last poll saw them
        (app/flows/vm_stats.py): switch, port, packets_in, bytes_in, packets_out, bytes_out,
        acl_drops, meter_drops, polled_at (Unix time); the counters and polled_at are None
        before a poll of its switch counted it. None if the VSI is not held. Costs that VSI."""

    def port_stats(self) -> list[dict[str, Any]]:
        """Per server port with VMs counted: switch, port and the sums of its VMs' counters
        (the fields of `vm_stats`, without polled_at). Costs the ports, not the VMs."""

    def lookup(self, query: str) -> dict[str, Any] | None:
        """Server lookup (draft 5.4) by VSI ID or MAC: {"vsi_id", "current": [attachments],
        "previous": [{"switch", "port", "until"}]}; None if never seen."""

    def migrations(
        self, vsi_id: str | None, tenant: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The migration log (app/vdp/migrations.py document), newest first: at most `limit`
        records, only `vsi_id`'s (VSI ID text) and `tenant`'s if given."""

    # changes -------------------------------------------------------------------------------
    def deassociate(self, vsi_id: str, reason: str) -> bool:
        """Bridge-initiated De-Associate: the station is told, the VM's flows are removed.
        False if the VSI is unknown."""

    def relocate(
        self, vsi_id: str, switch: str, port: str, *, replicate: bool = False
    ) -> dict[str, Any]:
        """Draft 5.5/5.6: prepare the VSI's network state at another port (switch name or dpid,
        port name or number) ahead of the station's own VDP requests; with replicate the source
        stays as it is. Raises KeyError (unknown VSI/switch/port) or ValueError (refused, with
        the reason)."""

    def apply_profiles(self, database: VsiTypeDatabase) -> dict[str, Any]:
        """Makes `database` the VSI type database: associated VMs of changed types get the new
        ACL/QoS on every switch without a gap (flows are modified in place); VMs whose type was
        removed, or whose VLAN/manager is no longer allowed, are de-associated. Returns
        {"updated": n, "deassociated": [vsi ids]}."""
