"""The stores the settings ask for: SQLite in one file (the default), or etcd v3."""

from app.config import Settings
from app.store.base import IntentStorage, Store
from app.store.intent_store import IntentStore
from app.store.sqlite_store import SqliteStore


def open_stores(settings: Settings) -> tuple[Store, IntentStorage]:
    """The store and the intent store; StoreError if etcd cannot be used."""
    max_age, max_rows = settings.event_retention_days * 86400, settings.event_retention_rows
    if settings.store == "etcd":
        # Imported only here: a controller on SQLite needs no etcd client.
        from app.store.etcd_intent import EtcdIntentStore
        from app.store.etcd_kv import EtcdKv
        from app.store.etcd_store import EtcdStore

        def connect() -> EtcdKv:  # one client each: their threads do not wait for each other
            return EtcdKv(settings.etcd_endpoints, settings.etcd_timeout)

        store = EtcdStore(connect(), settings.etcd_prefix, max_age, max_rows)
        return store, EtcdIntentStore(connect(), settings.etcd_prefix)
    return SqliteStore(settings.db_path, max_age, max_rows), IntentStore(settings.db_path)
