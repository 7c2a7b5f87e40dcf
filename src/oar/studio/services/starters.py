""" "Open in notebook": a notebook in the user's workspace that loads a dataset version, queries a model
version or calls a deployment (``oar.notebooks.starters`` writes the code), opened in JupyterLab."""

from __future__ import annotations

from oar._core.errors import InvalidInputError
from oar.notebooks.starters import dataset_notebook, deployment_notebook, model_notebook, slug
from oar.studio.services.access import Principal, require_creator
from oar.studio.services.datasets import DatasetService
from oar.studio.services.deployments import DeploymentService
from oar.studio.services.models import ModelService
from oar.studio.services.notebooks import NotebookService

KINDS = ("dataset", "model", "deployment")


class StarterService:
    def __init__(
        self,
        notebooks: NotebookService,
        datasets: DatasetService,
        models: ModelService,
        deployments: DeploymentService,
    ) -> None:
        self.notebooks = notebooks
        self.datasets = datasets
        self.models = models
        self.deployments = deployments

    def open(self, who: Principal | None, kind: str, ref: str) -> str:
        """``kind`` is dataset (``name:version``), model (``name:version``) or deployment (its id); the URL."""
        user = require_creator(who, "use notebooks")
        if kind == "dataset":
            name, version = _name_version(ref)
            found = self.datasets.version(user, name, version)
            notebook = dataset_notebook(found.name, found.version)
            path = f"from-studio/dataset-{slug(found.name)}-v{found.version}.ipynb"
        elif kind == "model":
            name, version = _name_version(ref)
            model = self.models.version(user, name, version)
            notebook = model_notebook(model.name, model.version, self.deployments.example_inputs(model))
            path = f"from-studio/model-{slug(model.name)}-v{model.version}.ipynb"
        elif kind == "deployment":
            deployment = self.deployments.get(user, ref)
            model = self.models.version(user, deployment.model, deployment.version) if deployment.version else None
            notebook = deployment_notebook(deployment.id, deployment.model, self.deployments.example_inputs(model))
            path = f"from-studio/deployment-{slug(deployment.id)}.ipynb"
        else:
            raise InvalidInputError(f"cannot open a '{kind}' in a notebook; kinds: {', '.join(KINDS)}")
        return self.notebooks.open_notebook(user, path, notebook)


def _name_version(ref: str) -> tuple[str, int]:
    name, _, version = ref.partition(":")
    if not name or not version.isdigit():
        raise InvalidInputError(f"bad reference '{ref}': use NAME:VERSION")
    return name, int(version)
