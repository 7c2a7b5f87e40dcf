"""Few-shot training as a job on the pools: a job file with a ``fewshot:`` section instead of ``data/model/trainer``.

::

    name: rt-fewshot-8          # the model's name in the hub
    fewshot: {dataset: rotten-tomatoes, shots: 8, seed: 0, iterations: 20, max_pairs: 1280}
    resources: {pool: spot, cpus: 2}

``oar jobs submit`` checks the section and the draw at submission, records the run (kind ``fewshot``,
status ``queued``) and queues a job of kind ``fewshot``, whose attempt is
``python -m oar.fewshot.job RUN_ID``. A run takes minutes, so it writes no checkpoints: an attempt
a preemption stops is requeued by the scheduler and the next one starts the same draw over, which
gives the same examples (the draw is a function of the seed).
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oar._core.config_files import invalid
from oar.hub import Hub, Run

JOB_KIND = "fewshot"
SECTION = "fewshot"


class FewShotJob(BaseModel):
    """The ``fewshot:`` section of a job file."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    shots: int
    seed: int = 0
    iterations: int = Field(20, ge=1)
    max_pairs: int | None = Field(1280, ge=1)
    test_limit: int | None = Field(None, ge=1)


def start_fewshot_run(training: dict[str, Any], hub: Hub, source: str) -> Run:
    """Validate the job file's sections, draw the examples and record the queued run (nothing is trained yet)."""
    from oar._core.errors import InvalidInputError
    from oar.fewshot.contrastive import FewShotRecipe
    from oar.fewshot.shots import draw_shots, load_text_dataset
    from oar.fewshot.train import RUN_KIND, default_name, fewshot_config

    extra = sorted(set(training) - {SECTION, "name"})
    if extra:
        raise InvalidInputError(f"{source}: a few-shot job has only name, fewshot and resources; found {extra}")
    try:
        spec = FewShotJob.model_validate(training[SECTION])
    except ValidationError as exc:
        raise invalid(source, exc, (SECTION,)) from None
    dataset = load_text_dataset(spec.dataset, spec.shots)
    recipe = FewShotRecipe(iterations=spec.iterations, max_pairs=spec.max_pairs)
    name = str(training.get("name") or default_name(dataset.name, spec.shots))
    ids = draw_shots(dataset, spec.shots, spec.seed).tolist()
    config = fewshot_config(dataset.name, spec.shots, spec.seed, name, recipe, ids)
    config["test_limit"] = spec.test_limit
    run = hub.runs.start(RUN_KIND, config, hub.register_dataset(dataset))
    return hub.runs.update(run.id, status="queued")


def run_job(run_id: str, hub: Hub) -> Run:
    """Train the queued run ``run_id`` from its recorded config (dataset, K, seed, recipe)."""
    from oar.fewshot.contrastive import FewShotRecipe
    from oar.fewshot.train import train_fewshot

    run = hub.runs.get(run_id)
    config = run.config
    if run.status == "finished":
        print(f"run {run_id} already finished")
        return run
    recipe = FewShotRecipe(**config["recipe"])
    result = train_fewshot(
        config["dataset"],
        int(config["shots"]),
        int(config["seed"]),
        name=config["model_name"],
        recipe=recipe,
        hub=hub,
        run_id=run_id,
        test_limit=config.get("test_limit"),
    )
    print(f"registered {result.model_id}: test accuracy {result.test_accuracy:.4f}", flush=True)
    return hub.runs.get(run_id)


def main(argv: list[str] | None = None) -> int:
    """``python -m oar.fewshot.job RUN_ID``: the attempt of a ``fewshot`` job; non-zero exit on failure."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 1:
        print("usage: python -m oar.fewshot.job RUN_ID", file=sys.stderr)
        return 2
    run_job(args[0], Hub())
    return 0


if __name__ == "__main__":
    sys.exit(main())
