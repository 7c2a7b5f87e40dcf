"""Pools of nodes with prices: what a job's ``pool:`` names, what the ledger multiplies by.

A pools file (YAML) lists each pool's node type, its size, its on-demand price per node-hour and,
for spot pools, the discount, the preemption notice and (for the simulator) a preemption rate::

    pools:
      on-demand: {node_type: m7i.large, node_cpus: 1, price_per_hour: 0.10, min_nodes: 1, max_nodes: 4}
      spot:
        node_type: m7i.large
        node_cpus: 1
        price_per_hour: 0.10        # the on-demand price of this node type
        spot: true
        spot_discount: 0.65         # spot costs 35% of on-demand
        notice_s: 120               # AWS gives 2 minutes, GCP and Azure 30 s
        preemptions_per_hour: 0.05  # per node, for the simulator
        min_nodes: 1
        max_nodes: 8
    quotas: {ana: 2}    # jobs placed or running at once, per user
    default_quota: 4

Without a file, ``default_pools()`` gives one on-demand and one spot pool of one to two 2-CPU nodes each (so
``--workers 2`` fits one node of the local executor).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oar._core.config_files import read_yaml, validation_problems
from oar._core.errors import InvalidInputError, NotFoundError
from oar._core.settings import oar_home


class Pool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    node_type: str = Field("local", description="cloud instance type, for the cluster launcher config")
    node_cpus: int = Field(1, ge=1)
    node_gpus: int = Field(0, ge=0)
    price_per_hour: float = Field(0.10, ge=0, description="on-demand $ per node-hour")
    spot: bool = False
    spot_discount: float = Field(0.0, ge=0, lt=1, description="fraction off the on-demand price")
    notice_s: float = Field(30.0, ge=0, description="seconds between a preemption notice and the node's loss")
    preemptions_per_hour: float = Field(0.0, ge=0, description="per node; only the simulator uses it")
    min_nodes: int = Field(1, ge=0)
    max_nodes: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _sizes(self) -> Pool:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) is above max_nodes ({self.max_nodes})")
        if self.spot_discount and not self.spot:
            raise ValueError("spot_discount is set but spot is false")
        return self

    @property
    def node_price_per_hour(self) -> float:
        """What one node of this pool costs an hour, spot discount applied."""
        return self.price_per_hour * (1.0 - self.spot_discount)

    def share_price_per_hour(self, cpus: int) -> float:
        """What ``cpus`` of one node cost an hour (a job pays for the share of the node it holds)."""
        return self.node_price_per_hour * min(cpus, self.node_cpus) / self.node_cpus


class Pools(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: dict[str, Pool]
    on_demand: str = Field("on-demand", description="the pool the deadline policy moves jobs to")
    quotas: dict[str, int] = Field(default_factory=dict, description="user → most jobs placed or running at once")
    default_quota: int | None = Field(None, ge=1, description="the quota of users not in quotas (None: no limit)")

    @model_validator(mode="after")
    def _names(self) -> Pools:
        object.__setattr__(self, "pools", {n: p.model_copy(update={"name": n}) for n, p in self.pools.items()})
        if not self.pools:
            raise ValueError("no pools defined")
        if self.on_demand not in self.pools:
            raise ValueError(f"on_demand pool '{self.on_demand}' is not defined")
        if self.pools[self.on_demand].spot:
            raise ValueError(f"on_demand pool '{self.on_demand}' is a spot pool")
        return self

    def get(self, name: str) -> Pool:
        if name not in self.pools:
            raise NotFoundError(f"unknown pool '{name}'; pools: {', '.join(self.pools)}")
        return self.pools[name]

    def largest_job(self, cpus: int, across_nodes: bool) -> int:
        """The most workers of ``cpus`` any pool can ever hold (on one node, or over its max nodes)."""
        best = 0
        for pool in self.pools.values():
            per_node = pool.node_cpus // cpus
            best = max(best, per_node * (pool.max_nodes if across_nodes else 1))
        return best


def default_pools() -> Pools:
    return Pools(
        pools={
            "on-demand": Pool(price_per_hour=0.10, node_cpus=2, min_nodes=1, max_nodes=2),
            "spot": Pool(
                price_per_hour=0.10, node_cpus=2, spot=True, spot_discount=0.65, notice_s=30, min_nodes=1, max_nodes=2
            ),
        }
    )


def load_pools(path: str | Path | None = None) -> Pools:
    """``path``, else ``OAR_POOLS``, else ``OAR_HOME/pools.yaml`` if it exists, else ``default_pools()``."""
    if path is None:
        path = os.environ.get("OAR_POOLS") or (oar_home() / "pools.yaml")
        if not Path(path).exists():
            return default_pools()
    raw = read_yaml(path, "pools file")
    try:
        return Pools.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc))
        raise InvalidInputError(f"pools file {path} is invalid: {problems}") from None
