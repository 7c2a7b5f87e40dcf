"""The Learn list: the learning path's tutorials, each user's own copy of one, and who finished which.

A copy goes into the user's workspace once (``tutorials/<name>.ipynb``) and is never overwritten:
reopening it keeps the user's edits. A tutorial counts as done when its last cell ran in the user's
kernel (it calls ``oar.notebooks.progress.tutorial_done`` with the user's own token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from oar.studio.orm import TutorialProgressRow
from oar.studio.services.access import Principal, require_creator, require_signed_in
from oar.studio.services.notebooks import NotebookService
from oar.tutorials import tutorial, tutorials


@dataclass(frozen=True)
class TutorialEntry:
    name: str
    title: str
    summary: str
    done_at: datetime | None


class TutorialService:
    def __init__(self, sessions: sessionmaker[Session], notebooks: NotebookService) -> None:
        self._sessions = sessions
        self.notebooks = notebooks

    def list(self, who: Principal | None) -> list[TutorialEntry]:
        user = require_signed_in(who)
        with self._sessions() as session:
            rows = session.scalars(select(TutorialProgressRow).where(TutorialProgressRow.user_id == user.id))
            done = {r.tutorial: r.done_at for r in rows}
        return [TutorialEntry(t.name, t.title, t.summary, done.get(t.name)) for t in tutorials()]

    def mark_done(self, who: Principal | None, name: str) -> TutorialEntry:
        user = require_signed_in(who)
        found = tutorial(name)
        with self._sessions() as session:
            row = session.get(TutorialProgressRow, (user.id, found.name))
            if row is None:
                row = TutorialProgressRow(user_id=user.id, tutorial=found.name)
                session.add(row)
            row.done_at = datetime.now(UTC)
            session.commit()
            return TutorialEntry(found.name, found.title, found.summary, row.done_at)

    def open_copy(self, who: Principal | None, name: str) -> str:
        """The user's own copy (made on first open), opened in JupyterLab: the URL to send the browser to."""
        require_creator(who, "use notebooks")
        found = tutorial(name)
        notebook = json.loads(found.path.read_text())
        return self.notebooks.open_notebook(who, f"tutorials/{found.name}.ipynb", notebook, replace=False)
