"""The HA bed's control side (docs/ha.md, "Running several controllers"): a 3-member etcd
cluster, then the controllers on one prefix of it under a supervisor; stopped in the reverse
order, each process by its PID."""

from contextlib import ExitStack, contextmanager
from pathlib import Path

from topologies.controller_cluster import ControllerCluster
from topologies.etcd_cluster import EtcdCluster
from topologies.supervisor import Supervisor

ETCD_MEMBERS = 3  # a quorum survives one member lost
PREFIX = "/evb-nms/datacenter"


def ha_cluster(
    workdir: Path, of_ports, rest_ports, extra_args=(), log_level="INFO"
) -> tuple[EtcdCluster, ControllerCluster]:
    """The etcd cluster in workdir/etcd (on the ports it had there before, or free ones) and
    the controllers c<i> in workdir/c<i> on it; nothing started yet."""
    etcd = EtcdCluster(Path(workdir) / "etcd", ETCD_MEMBERS)
    controllers = ControllerCluster(
        workdir, etcd.endpoints, PREFIX, of_ports, rest_ports, extra_args, log_level
    )
    return etcd, controllers


@contextmanager
def running(etcd: EtcdCluster, controllers: ControllerCluster, report=print):
    """Start etcd, the controllers and their supervisor; yield the supervisor; stop them all,
    even after an error."""
    with ExitStack() as started:
        etcd.start()
        started.callback(etcd.stop)
        started.callback(controllers.stop)
        controllers.start()
        supervisor = Supervisor(controllers.members, report).start()
        started.callback(supervisor.stop)
        yield supervisor
