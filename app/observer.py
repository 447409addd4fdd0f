"""What the pure logic tells whoever measures it (app/metrics.py), as it happens: one call per
VDP request, response, refusal, flow batch or activation, never a scan. The default observer
measures nothing, so the pure layers and their tests need no metrics library."""


class Observer:
    def vdp_request(self, mode: str) -> None:
        """A VDP request taken from a station (`mode`: associate, pre_associate, ...)."""

    def vdp_response(self, mode: str, status: str, seconds: float | None) -> None:
        """A VDP response on its way to a station (`status`: success or the error's name);
        `seconds` since its request reached the controller (None: bridge-initiated)."""

    def refusal(self, error: str) -> None:
        """A VSI request refused (counted even when its event is summarized)."""

    def flow_batch(self, seconds: float, failed: bool) -> None:
        """A flow change confirmed by every switch's barrier, `seconds` after it was sent."""

    def activation(self, seconds: float) -> None:
        """A migrating VM's first frame to its flows confirmed at the destination."""

    def audit_request(self) -> None:
        """A multipart request of the intent audit sent (app/fabric/audit.py)."""

    def audit_pass(self, seconds: float) -> None:
        """The audit read every ready switch once, in `seconds`."""

    def audit_repaired(self, found: dict[str, int]) -> None:
        """A repair confirmed: flows and meters found missing, unexpected or changed."""

    def probe(self, vid: int, result: str, seconds: float | None = None) -> None:
        """A data-plane probe of VLAN `vid` (app/fabric/probes.py) `sent`, `received` (after
        `seconds`), `lost` or `rejected` (not a probe of ours in flight: forged, late, twice)."""
