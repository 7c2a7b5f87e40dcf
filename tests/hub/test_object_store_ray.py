"""Two Ray nodes, each with its own OAR_HOME, share one hub through PostgreSQL and an S3 API: a package
registered by a task on one node opens (downloaded and verified) in a task on the other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("boto3")
from ray.cluster_utils import Cluster  # noqa: E402

from .s3_server import moto_server  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


def _register_on_this_node() -> tuple[str, str, str]:
    import tempfile
    from pathlib import Path

    from oar.hub import Hub
    from oar.package import ModelPackage
    from oar.package.manifest import Lineage, Manifest, RuntimeSpec, TensorSpec

    source = Path(tempfile.mkdtemp())
    (source / "model.onnx").write_bytes(bytes(range(256)) * 400)
    x = TensorSpec(name="x", datatype="FP32", shape=[-1, 4])
    runtime = RuntimeSpec(tokenizer_file=None, graph_inputs=[x], graph_outputs=[x])
    ModelPackage.write(source, Manifest(name="m", task="generic", inputs=[x], outputs=[x], runtime=runtime,
                                        lineage=Lineage(oar_version="test")))  # fmt: skip
    version = Hub().register_model(source, "shared", owner="ray")
    return os.environ["OAR_HOME"], version.digest, str(version.path)


def _open_on_this_node() -> tuple[str, str, str]:
    from oar._core.digest import sha256_tree
    from oar.hub import Hub

    package = Hub().open_package("shared")
    return os.environ["OAR_HOME"], sha256_tree(package.path), str(package.path)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_package_registered_on_one_node_opens_on_another(tmp_path, database_url, monkeypatch, ray_retried):
    database = database_url
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    with moto_server() as endpoint:
        import boto3

        common = {
            "OAR_DATABASE_URL": database,
            "OAR_ARTIFACTS_URL": "s3://ray-hub/oar",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            # the workers import oar and this module (its tasks) as the test process does
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="ray-hub")  # fmt: skip
        cluster = ray_retried(
            lambda: Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        )
        try:
            for machine in ("a", "b"):
                env = {**common, "OAR_HOME": str(tmp_path / f"home-{machine}")}
                ray_retried(
                    lambda m=machine, e=env: cluster.add_node(num_cpus=1, resources={f"machine:{m}": 1}, env_vars=e)
                )
            cluster.wait_for_nodes()
            ray.init(address=cluster.address)
            register = ray.remote(resources={"machine:a": 1})(_register_on_this_node)
            open_ = ray.remote(resources={"machine:b": 1})(_open_on_this_node)
            home_a, digest, path_a = ray.get(register.remote(), timeout=300)
            home_b, fetched, path_b = ray.get(open_.remote(), timeout=300)
        finally:
            ray.shutdown()
            cluster.shutdown()
    assert (home_a, home_b) == (str(tmp_path / "home-a"), str(tmp_path / "home-b"))
    assert path_a.startswith(home_a) and path_b.startswith(home_b)
    assert fetched == digest
