"""The controller's accepted intent on etcd (--store etcd): a key per VSI and one per list under
the prefix, as app/store/intent_store.py keeps them in SQLite rows:

    intent/vsis/<VSI key>          all the VSI's records (app/vdp/bridge.py export_vsi)
    intent/lists/links, intent/lists/rr_ports, intent/lists/channels

A save writes what changed (IntentChanges) in one transaction: its VSIs' keys and the lists that
changed, never the whole intent, on the condition that its controller still leads (`fence`);
it holds as many operations as the batch changed VSIs, which is why the cluster runs with a
raised --max-txn-ops (scripts/etcd-cluster.sh, docs/ha.md)."""

import json

from app.store.base import INTENT_LISTS, Fenced, IntentChanges, compact_json, intent_document
from app.store.etcd_kv import EtcdKv, delete, key_part, put, same_create_revision


class EtcdIntentStore:
    def __init__(self, kv: EtcdKv, prefix: str):
        self._kv = kv
        self._vsis = prefix.rstrip("/") + "/intent/vsis/"
        self._lists = prefix.rstrip("/") + "/intent/lists/"
        self._fence: list[dict] = []

    def fence(self, key: str, generation: int) -> None:
        """From now on a save succeeds only while `key` is the one created at `generation`
        (the leader key of this controller's election): a deposed leader's saves are refused
        by etcd itself, whatever this process believes."""
        self._fence = [same_create_revision(key, generation)]

    def load(self) -> dict | None:
        vsis = [
            record
            for _, value, _ in self._kv.scan_prefix(self._vsis)
            for record in json.loads(value)
        ]
        lists = {
            key.removeprefix(self._lists): json.loads(value)
            for key, value, _ in self._kv.scan_prefix(self._lists)
        }
        return intent_document(vsis, lists)

    def save(self, changes: IntentChanges) -> None:
        ops = [
            put(self._vsis + key_part(vsi), compact_json(records).encode())
            if records
            else delete(self._vsis + key_part(vsi))
            for vsi, records in changes.vsis.items()
        ]
        for name in INTENT_LISTS:
            value = getattr(changes, name)
            if value is not None:
                ops.append(put(self._lists + name, compact_json(value).encode()))
        if ops and not self._kv.txn(ops, self._fence).get("succeeded"):
            raise Fenced("the intent was not saved: this controller no longer leads")

    def close(self) -> None:
        self._kv.close()
