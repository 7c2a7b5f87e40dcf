"""Jobs: a queue of training jobs in the hub database, placed on pools of priced nodes.

``oar jobs submit job.yaml --pool spot`` records the run and enqueues it; a scheduler
(``oar.jobs.scheduler``) places it on a node of the pool through an executor (local processes, or a
Ray cluster), turns spot preemption notices into SIGTERM → checkpoint → exit 75 → requeue → resume,
and keeps a ledger of what every attempt cost (``oar.jobs.ledger``). See docs/jobs.md.
"""

from oar.jobs import orm as _orm  # noqa: F401  (registers the tables on the hub's Base)
