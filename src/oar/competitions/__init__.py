"""Competitions: a hidden test set, public/private leaderboards, submissions scored as jobs.

``config`` reads a competition file, ``hidden`` writes the hidden split (inputs for everyone, labels
for the scorer only), ``predictions`` validates a predictions file line by line, ``metrics`` is the
registry of metrics, ``store`` keeps competitions and submissions in the hub database, ``service``
creates, submits and ranks, and ``worker`` is the scoring job's process (a job of kind ``score``
in ``oar.jobs``). The studio builds its pages and API on ``service``; nothing here imports the studio.
See docs/competitions.md.
"""

from oar.competitions import orm as _orm  # noqa: F401  (registers the tables on the hub's Base)
