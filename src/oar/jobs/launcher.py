"""A Ray cluster launcher config (``ray up cluster.yaml``) generated from the pools file.

Each pool becomes a node type whose nodes advertise ``pool:NAME`` (what the Ray executor places on),
with the pool's ``min_nodes`` / ``max_nodes`` as the autoscaler's ``min_workers`` / ``max_workers``, so
the cluster grows with the queue and shrinks when idle. Spot pools ask for spot capacity (AWS
``InstanceMarketOptions``, GCP ``scheduling.provisioningModel: SPOT``).

Every node installs this project's own wheel, shipped with the config through the launcher's
``file_mounts`` (an index may hold another release, or, under the name ``oar``, another project);
only its dependencies come from the index.

>>> write_cluster_files(load_pools(), Path("cluster"), provider="aws", region="eu-west-1")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oar._core.errors import InvalidInputError
from oar.jobs.pools import Pool, Pools

HEAD = "head"
WHEELS_ON_NODE = "~/oar-wheels"  # where file_mounts puts the shipped wheel on every node


def _check_provider(provider: str, project_id: str | None) -> None:
    if provider not in ("aws", "gcp"):
        raise InvalidInputError(f"unknown provider '{provider}'; known: aws, gcp")
    if provider == "gcp" and not project_id:
        raise InvalidInputError("--project-id is required with --provider gcp: the GCP project the nodes run in")


def _node_config(pool: Pool, provider: str) -> dict[str, Any]:
    if provider == "aws":
        config: dict[str, Any] = {"InstanceType": pool.node_type}
        if pool.spot:
            config["InstanceMarketOptions"] = {"MarketType": "spot"}
        return config
    if provider == "gcp":
        config = {"machineType": pool.node_type}
        if pool.spot:
            config["scheduling"] = {"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE"}
        return config
    raise ValueError(f"unknown provider '{provider}'; known: aws, gcp")


def launcher_config(
    pools: Pools,
    provider: str,
    region: str,
    *,
    wheel: Path,
    project_id: str | None = None,
    name: str = "oar-jobs",
) -> dict:
    """The launcher config; ``wheel`` is this project's wheel on this machine, ``project_id`` GCP's project."""
    _check_provider(provider, project_id)
    types: dict[str, Any] = {
        HEAD: {"resources": {"CPU": 0}, "node_config": _node_config(pools.get(pools.on_demand), provider)}
    }
    for pool in pools.pools.values():
        resources: dict[str, Any] = {"CPU": pool.node_cpus, f"pool:{pool.name}": 1}
        if pool.node_gpus:
            resources["GPU"] = pool.node_gpus
        types[pool.name] = {
            "min_workers": pool.min_nodes,
            "max_workers": pool.max_nodes,
            "resources": resources,
            "node_config": _node_config(pool, provider),
        }
    location = {"region": region} if provider == "aws" else {"region": region, "project_id": project_id}
    return {
        "cluster_name": name,
        "max_workers": sum(p.max_nodes for p in pools.pools.values()),
        "idle_timeout_minutes": 5,
        "provider": {"type": provider, **location},
        "available_node_types": types,
        "head_node_type": HEAD,
        # every node must see the same OAR_HOME (checkpoints) and hub database
        # and installs this project's wheel, mounted from the folder beside the config (dependencies: the index)
        "file_mounts": {WHEELS_ON_NODE: str(wheel.resolve().parent)},
        "setup_commands": [f'pip install "{WHEELS_ON_NODE.replace("~", "$HOME")}/{wheel.name}[train,ray]"'],
        "head_start_ray_commands": [
            "ray stop",
            "ray start --head --port=6379 --ray-client-server-port=10001"
            " --autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"],
    }


def write_cluster_files(
    pools: Pools,
    out: Path,
    provider: str,
    region: str,
    *,
    project_id: str | None = None,
    wheel: Path | None = None,
) -> Path:
    """Write ``out/cluster.yaml`` and ``out/wheels/<this project's wheel>``; return the config's path.

    ``wheel`` is a wheel built beforehand (an installed oar has no source to build from); by default
    the wheel is built from the running source tree.
    """
    import shutil

    import yaml

    from oar._core.distribution import NAME, build_wheel

    _check_provider(provider, project_id)
    wheels = out / "wheels"
    if wheel is None:
        shipped = build_wheel(wheels)
    else:
        if not wheel.is_file() or not wheel.name.startswith(f"{NAME.replace('-', '_')}-") or wheel.suffix != ".whl":
            raise InvalidInputError(f"--wheel: {wheel} is not an {NAME} wheel file")
        wheels.mkdir(parents=True, exist_ok=True)
        shipped = Path(shutil.copy2(wheel, wheels / wheel.name))
    config = launcher_config(pools, provider, region, wheel=shipped, project_id=project_id)
    path = out / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
