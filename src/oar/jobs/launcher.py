"""A Ray cluster launcher config (``ray up cluster.yaml``) generated from the pools file.

Each pool becomes a node type whose nodes advertise ``pool:NAME`` (what the Ray executor places on),
with the pool's ``min_nodes`` / ``max_nodes`` as the autoscaler's ``min_workers`` / ``max_workers``, so
the cluster grows with the queue and shrinks when idle. Spot pools ask for spot capacity (AWS
``InstanceMarketOptions``, GCP ``scheduling.provisioningModel: SPOT``).

>>> print(yaml.safe_dump(launcher_config(load_pools(), provider="aws", region="eu-west-1")))
"""

from __future__ import annotations

from typing import Any

from oar.jobs.pools import Pool, Pools

HEAD = "head"


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


def launcher_config(pools: Pools, provider: str = "aws", region: str = "us-east-1", name: str = "oar-jobs") -> dict:
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
    location = {"region": region} if provider == "aws" else {"region": region, "project_id": "YOUR-PROJECT"}
    return {
        "cluster_name": name,
        "max_workers": sum(p.max_nodes for p in pools.pools.values()),
        "idle_timeout_minutes": 5,
        "provider": {"type": provider, **location},
        "available_node_types": types,
        "head_node_type": HEAD,
        # every node must see the same OAR_HOME (checkpoints) and hub database
        "setup_commands": ["pip install 'oar[train,ray]'"],
        "head_start_ray_commands": [
            "ray stop",
            "ray start --head --port=6379 --ray-client-server-port=10001"
            " --autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"],
    }
