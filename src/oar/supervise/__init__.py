"""Starting and supervising the platform's processes: one Spawner interface, backends, a Supervisor.

Modelled on JupyterHub's Spawner: ``start()`` returns a JSON-serialisable
state the caller stores, ``poll()`` says whether the unit still runs,
``stop()`` ends it, and ``spawner_from_state()`` re-adopts it after the
caller restarts. ``Supervisor`` restarts crashed units with back-off and
reports every change. ``ServeDeployment`` runs one hub model under
``oar serve`` (ports, bearer token, readiness, live figures, zero-failure
version rollover); ``ReplicatedDeployment`` runs N of them (locally or on a
Ray cluster through ``RaySpawner``) behind one HAProxy endpoint, with
draining, autoscaling and replica-by-replica rollover. See ``docs/supervise.md``.

This package never imports ``oar.studio``: the studio builds on it.
"""

from oar.supervise.autoscale import AutoscalePolicy
from oar.supervise.balancer import HAProxyBalancer
from oar.supervise.deployment import ServeDeployment
from oar.supervise.figures import LiveFigures, MetricsSnapshot
from oar.supervise.health import StartFailedError, is_ready, wait_ready
from oar.supervise.local import LocalProcessSpawner, ProcessSpec
from oar.supervise.logs import RotatingLog
from oar.supervise.ports import allocate_ports, port_is_free, release_ports
from oar.supervise.procinfo import ProcessIdentity
from oar.supervise.replicas import ReplicaCount, ReplicatedDeployment
from oar.supervise.spawner import EXIT_UNKNOWN, Spawner, spawner_from_state
from oar.supervise.supervisor import RestartPolicy, Status, Supervisor

__all__ = [
    "EXIT_UNKNOWN",
    "AutoscalePolicy",
    "HAProxyBalancer",
    "LiveFigures",
    "LocalProcessSpawner",
    "MetricsSnapshot",
    "ProcessIdentity",
    "ProcessSpec",
    "ReplicaCount",
    "ReplicatedDeployment",
    "RestartPolicy",
    "RotatingLog",
    "ServeDeployment",
    "Spawner",
    "StartFailedError",
    "Status",
    "Supervisor",
    "allocate_ports",
    "is_ready",
    "port_is_free",
    "release_ports",
    "spawner_from_state",
    "wait_ready",
]
