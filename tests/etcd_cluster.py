"""A real etcd cluster for the tests (topologies/etcd_cluster.py), skipped where etcd is not
installed, or failed where scripts/test.sh requires it."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from topologies.etcd_cluster import EtcdCluster

NO_ETCD = (
    None
    if shutil.which("etcd") and shutil.which("etcdctl")
    else "no etcd binary (Debian packages etcd-server and etcd-client; scripts/bootstrap.sh "
    "installs them)"
)
# scripts/test.sh (so CI) installs etcd first: there its absence fails the etcd tests.
REQUIRED = os.environ.get("EVB_REQUIRE_BED") == "1"


def require_etcd() -> None:
    """Skip the test without etcd (fail it where the bed is required)."""
    if NO_ETCD:
        if REQUIRED:
            pytest.fail(f"etcd is required (EVB_REQUIRE_BED=1) but there is {NO_ETCD}")
        pytest.skip(NO_ETCD)


@contextmanager
def etcd_cluster(directory: Path, members: int):
    require_etcd()
    cluster = EtcdCluster(directory, members)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
