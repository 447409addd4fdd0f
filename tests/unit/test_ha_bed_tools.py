"""The HA bed's tools without a bed: the supervisor's restarts, which controller leads as the
instances answer, the etcd cluster's ports kept in its directory, evb-datacenter's options."""

import subprocess

import pytest

from topologies.controller_cluster import ControllerCluster
from topologies.etcd_cluster import EtcdCluster
from topologies.run_datacenter import parse_args
from topologies.supervisor import DEPOSED, Supervisor


class FakeController:
    """A ControllerProcess whose process exits at once with the status given."""

    def __init__(self, status):
        self.status, self.proc, self.starts = status, None, 0
        self.start()

    def start(self):
        self.starts += 1
        self.proc = subprocess.Popen(["sh", "-c", f"exit {self.status}"])
        self.proc.wait()
        return self


def test_the_supervisor_restarts_a_deposed_controller_once_per_exit_and_leaves_others():
    deposed, crashed, running = FakeController(3), FakeController(1), FakeController(0)
    running.proc = subprocess.Popen(["sleep", "60"])
    lines = []
    supervisor = Supervisor({"c1": deposed, "c2": crashed, "c3": running}, lines.append)
    try:
        supervisor.check()
        supervisor.check()  # the restarted c1 exits with 3 again: one more restart, no more
        supervisor.check()
    finally:
        running.proc.kill()
        running.proc.wait()
    assert deposed.starts == 4 and supervisor.restarts == {"c1": 3, "c2": 0, "c3": 0}
    assert crashed.starts == 1
    assert lines.count("c2 exited with status 1") == 1
    assert lines.count("c1 deposed (exit status 3): starting it again as a follower") == 3
    assert lines.count(f"c1 started again, PID {deposed.proc.pid}") == 1
    assert not any(line.startswith("c3") for line in lines)


def test_the_supervisor_knows_the_controllers_deposed_status():
    from app.controller.evb_app import EXIT_DEPOSED

    assert DEPOSED == EXIT_DEPOSED


def _cluster(tmp_path, views, running=("c1", "c2", "c3")):
    cluster = ControllerCluster(tmp_path, ["http://127.0.0.1:2379"], "/p", [1, 2, 3], [4, 5, 6])
    cluster.views = lambda: views
    cluster.running = lambda: {name: cluster.members[name] for name in running}
    return cluster


def _view(role, leader):
    return {"role": role, "leader": leader and {"id": leader, "url": "u", "generation": 7}}


def test_the_leader_is_the_one_every_answering_controller_names_and_that_leads(tmp_path):
    agreed = {"c1": _view("follower", "c2"), "c2": _view("leader", "c2")}
    assert _cluster(tmp_path, agreed).leader() == "c2"
    assert _cluster(tmp_path, agreed).followers() == ["c1", "c3"]
    split = {"c1": _view("leader", "c1"), "c2": _view("leader", "c2")}
    assert _cluster(tmp_path, split).leader() is None
    gone = {"c1": _view("follower", "c3")}  # c3 was killed: nobody leads yet
    assert _cluster(tmp_path, gone).leader() is None
    assert _cluster(tmp_path, {"c1": _view("follower", None)}).leader() is None


def test_every_controller_gets_its_name_url_and_the_store(tmp_path):
    cluster = ControllerCluster(
        tmp_path, ["http://127.0.0.1:2379", "http://127.0.0.1:2381"], "/p", [11, 12], [21, 22]
    )
    args = cluster.members["c2"].args
    for flag, value in (
        ("--of-port", "12"),
        ("--rest-listen", "127.0.0.1:22"),
        ("--store", "etcd"),
        ("--etcd-endpoints", "http://127.0.0.1:2379,http://127.0.0.1:2381"),
        ("--etcd-prefix", "/p"),
        ("--controller-id", "c2"),
        ("--advertise-url", "http://127.0.0.1:22"),
    ):
        assert args[args.index(flag) + 1] == value, flag
    assert cluster.members["c2"].workdir == tmp_path / "c2"
    with pytest.raises(ValueError):
        ControllerCluster(tmp_path, [], "/p", [1, 2], [3])


def test_an_etcd_directory_keeps_its_ports_for_a_restart_from_its_data(tmp_path):
    first = EtcdCluster(tmp_path / "etcd", 3)
    again = EtcdCluster(tmp_path / "etcd", 3)
    assert again.port == first.port
    assert again.endpoints == [f"http://127.0.0.1:{first.port + 2 * i}" for i in range(3)]


def test_several_controllers_need_etcd(capsys):
    assert parse_args(["--controllers", "3", "--store", "etcd"]).controllers == 3
    assert parse_args([]).store == "sqlite" and parse_args([]).controllers == 1
    for argv in (["--controllers", "2"], ["--controllers", "0", "--store", "etcd"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert "add --store etcd" in capsys.readouterr().err
