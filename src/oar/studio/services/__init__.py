"""What the API routers and the web views both call: one service per resource over the hub.

A new resource is a service here, a router in ``studio/api`` and a views module in ``studio/web``.
"""

from __future__ import annotations

from dataclasses import dataclass

from oar.hub import Hub
from oar.studio.config import StudioConfig
from oar.studio.security import SecretHasher, SignInLimiter
from oar.studio.services.accounts import AccountService
from oar.studio.services.browser_sessions import BrowserSessions
from oar.studio.services.competitions import CompetitionService
from oar.studio.services.datasets import DatasetService
from oar.studio.services.deployments import DeploymentService
from oar.studio.services.jobs import JobService
from oar.studio.services.models import ModelService
from oar.studio.services.notebooks import NotebookService
from oar.studio.services.runs import RunService
from oar.studio.services.solutions import SolutionService
from oar.studio.services.starters import StarterService
from oar.studio.services.storage import StorageService
from oar.studio.services.tutorials import TutorialService


@dataclass
class Services:
    config: StudioConfig
    hub: Hub
    accounts: AccountService
    models: ModelService
    datasets: DatasetService
    runs: RunService
    jobs: JobService
    deployments: DeploymentService
    competitions: CompetitionService
    notebooks: NotebookService
    tutorials: TutorialService
    starters: StarterService
    solutions: SolutionService
    storage: StorageService
    signin_limiter: SignInLimiter

    @classmethod
    def build(cls, config: StudioConfig, hub: Hub | None = None) -> Services:
        hub = hub or Hub(home=config.home, url=config.url)
        models = ModelService(hub)
        datasets = DatasetService(hub)
        deployments = DeploymentService(hub, models, config)
        accounts = AccountService(hub.sessions, SecretHasher(config.argon2), BrowserSessions(hub.sessions))
        notebooks = NotebookService(config, accounts, config.notebooks)
        return cls(
            config=config,
            hub=hub,
            accounts=accounts,
            models=models,
            datasets=datasets,
            runs=RunService(hub),
            jobs=JobService(hub),
            deployments=deployments,
            competitions=CompetitionService(hub, accounts),
            notebooks=notebooks,
            tutorials=TutorialService(hub.sessions, notebooks),
            starters=StarterService(notebooks, datasets, models, deployments),
            solutions=SolutionService(hub),
            storage=StorageService(hub),
            signin_limiter=SignInLimiter(config.signin_attempts, config.signin_window),
        )

    def close(self) -> None:
        self.deployments.close()
        self.notebooks.close()
        self.hub.close()
