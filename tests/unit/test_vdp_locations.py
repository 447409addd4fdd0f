"""The location history (server lookup, draft 5.4): bounded, and kept across a restart
(issue 10: it was lost at every restart)."""

from types import SimpleNamespace

from app.codec.vdp import VsiId
from app.fabric.ports import PortRef
from app.store.sqlite_store import SqliteStore
from app.vdp.locations import LocationHistory

VSIS = [VsiId.from_uuid(f"a1b2c3d4-0000-0000-0000-{n:012x}") for n in range(4)]


def moved(vsi_id, src: PortRef, dst: PortRef):
    """The binding changes of a VSI that moved from ``src`` to ``dst``."""
    before = SimpleNamespace(vsi_id=vsi_id, port=src, forwarding=True)
    after = SimpleNamespace(vsi_id=vsi_id, port=dst, forwarding=True)
    return {(vsi_id, src): (before, None), (vsi_id, dst): (None, after)}


def test_the_history_is_bounded_per_vsi_and_in_vsis_and_says_what_it_forgot():
    writes = []
    history = LocationHistory(per_vsi=2, vsis=2, save=lambda s, r: writes.append((s, r)))
    for n in range(3):
        history.record(moved(VSIS[0], PortRef(1, n), PortRef(1, n + 1)), float(n))
    assert history.of(VSIS[0]) == [(PortRef(1, 1), 1.0, None), (PortRef(1, 2), 2.0, None)]
    history.record(moved(VSIS[1], PortRef(2, 1), PortRef(2, 2)), 3.0)
    history.record(moved(VSIS[2], PortRef(3, 1), PortRef(3, 2)), 4.0)
    assert VSIS[0] not in history and VSIS[2] in history
    saved, removed = writes[-1]
    assert removed == [f"5:{VSIS[0].value.hex()}"]
    assert saved == [(f"5:{VSIS[2].value.hex()}", 4.0, [[3, 1, 4.0, None]])]


def test_the_history_comes_back_after_a_restart(tmp_path):
    path = str(tmp_path / "evb.db")
    store = SqliteStore(path)
    hosts = {PortRef(1, 1): "srv11", PortRef(2, 1): "srv21"}
    history = LocationHistory(save=store.save_locations, host_of=hosts.get)
    history.record(moved(VSIS[0], PortRef(1, 1), PortRef(2, 1)), 10.0)
    history.record(moved(VSIS[0], PortRef(2, 1), PortRef(1, 2)), 20.0)
    history.record(moved(VSIS[1], PortRef(1, 3), PortRef(2, 3)), 15.0)
    store.close()
    store = SqliteStore(path)
    again = LocationHistory(saved=store.locations(), save=store.save_locations)
    for vsi_id in VSIS[:2]:
        assert again.of(vsi_id) == history.of(vsi_id)
    # The hosts as they were when the VM left them, whatever the inventory says now.
    assert [host for _, _, host in again.of(VSIS[0])] == ["srv11", "srv21"]
    # Restarted with a smaller bound: the least recently moved are forgotten, in the store too.
    store.close()
    store = SqliteStore(path)
    smaller = LocationHistory(vsis=1, saved=store.locations(), save=store.save_locations)
    assert VSIS[0] in smaller and VSIS[1] not in smaller
    assert [key for key, _, _ in store.locations()] == [f"5:{VSIS[0].value.hex()}"]
    store.close()


def test_a_history_saved_before_hosts_were_kept_loads_without_them():
    key = f"5:{VSIS[0].value.hex()}"
    history = LocationHistory(saved=[(key, 1.0, [[1, 2, 1.0]])])
    assert history.of(VSIS[0]) == [(PortRef(1, 2), 1.0, None)]
