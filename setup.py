"""evb-nms: an IEEE 802.1Qbg EVB network management system on os-ken."""

from setuptools import find_packages, setup

setup(
    name="evb-nms",
    version="0.1.0",
    description="SDN controller that makes a data-center network follow its VMs (802.1Qbg EVB/VDP)",
    python_requires=">=3.11",
    packages=find_packages(include=["app", "app.*", "topologies", "topologies.*"]),
    # The web console's static files (app/rest/console.py serves them): no build step.
    package_data={"app": ["console/*.html", "console/*.js", "console/*.css"]},
    install_requires=[
        # os-ken 4.x: native-thread hub and AppManager.run_apps; 5.x may drop APIs we rely on.
        "os-ken>=4.2,<5",
        "webob>=1.8",
        "netaddr>=0.8",
        "PyYAML>=6",
        # the registry's VMs and their indexes: persistent maps, so a change costs O(log n)
        # and readers keep a snapshot without a lock (app/registry/vm_table.py).
        "pyrsistent>=0.20",
        # the VSIs held in VSI ID order, so a page of GET /v1/associations costs its length and
        # log n rather than a sort of every VSI (app/vdp/bridge.py vsis_after).
        "sortedcontainers>=2.4",
        # GET /metrics: Prometheus's own client writes the exposition format (app/metrics.py).
        "prometheus_client>=0.17",
        # --store etcd: etcd v3's JSON gateway (app/store/etcd_kv.py); the version tested
        "etcd3gw>=2.7,<3",
    ],
    extras_require={
        # ruff and mypy: .ci/run lints and type-checks before the tests (pyproject.toml); pinned
        # to a minor version, as their releases add checks.
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "scapy>=2.5",
            "ruff>=0.17.6,<0.18",
            "mypy>=2.4,<2.5",
            "types-PyYAML>=6",
            # tests/unit/test_rest_fuzz.py: the REST API against docs/openapi.yaml (4.x API).
            "schemathesis>=4.32,<5",
            # tests/integration/test_console_bed.py drives Debian's chromium + chromium-driver.
            "selenium>=4",
        ],
    },
    entry_points={
        "console_scripts": [
            "evb-nms=app.cli.evb_nms:main",
            "evbctl=app.cli.evbctl:main",
            "evb-datacenter=topologies.run_datacenter:main",
            "evb-vcenter=app.vcenter.reference:main",
        ],
    },
)
