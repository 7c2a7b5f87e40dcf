"""``oar competitions create | list | submit | submissions | leaderboard | select | close`` on this machine's hub.

The same rules as the studio's competition pages (phases, quotas, no private score before the end);
scoring runs as jobs of the local queue. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oar._core.errors import InvalidInputError

console = Console()
competitions_app = typer.Typer(
    help="Competitions: hidden test sets, public/private leaderboards, scored submissions.", no_args_is_help=True
)


def _core() -> Any:
    import oar.competitions
    import oar.jobs  # noqa: F401
    from oar.competitions.service import Competitions
    from oar.hub import Hub

    return Competitions(Hub())


def _user(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "anonymous"


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(table)


@competitions_app.command("create")
def create(
    config: Annotated[Path, typer.Argument(help="a competition YAML file (a metric file may sit beside it)")],
    owner: Annotated[str | None, typer.Option(help="the organizer's user name")] = None,
) -> None:
    """Create a competition: the hidden test split is written, its labels kept for the scorer only."""
    from oar.competitions.config import read_spec

    spec = read_spec(config)
    competition = _core().create(spec, _user(owner), bundle=config.resolve().parent)
    console.print(
        f"competition [bold]{competition.name}[/] created: {competition.test_size} hidden test rows "
        f"({competition.public_size} public), open until {competition.ends_at:%Y-%m-%d %H:%M} UTC"
    )


@competitions_app.command("list")
def list_competitions() -> None:
    """Competitions, with their dataset, metric and end."""
    rows = [
        [c.name, c.title, f"{c.dataset_name} v{c.dataset_version}", c.spec["metric"], c.test_size, c.ends_at]
        for c in _core().store.list()
    ]
    _table("competitions", ["name", "title", "dataset", "metric", "test rows", "ends (UTC)"], rows)


@competitions_app.command("submit")
def submit(
    competition: Annotated[str, typer.Argument(help="the competition's name")],
    file: Annotated[Path | None, typer.Option(help="a predictions file: CSV (id,prediction) or JSON Lines")] = None,
    model: Annotated[str | None, typer.Option(help="a hub model NAME:VERSION, run in the sandbox")] = None,
    reproduce: Annotated[str | None, typer.Option(help="a run id: re-trained, both models scored")] = None,
    note: Annotated[str, typer.Option(help="a note shown with the submission")] = "",
    user: Annotated[str | None, typer.Option(help="whose submission (default: this user)")] = None,
) -> None:
    """Submit predictions, a model package or a run to reproduce; a job scores it (`oar competitions submissions`)."""
    if sum(x is not None for x in (file, model, reproduce)) != 1:
        raise InvalidInputError("give exactly one of --file F, --model NAME:VERSION or --reproduce RUN_ID")
    core = _core()
    target = core.store.get(competition)
    if file is not None:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {file}: {exc.strerror}") from None
        submission = core.submit_file(target, _user(user), content, file.name, note)
    elif model is not None:
        submission = core.submit_package(target, _user(user), model, note)
    else:
        submission = core.submit_reproduction(target, _user(user), str(reproduce), note)
    console.print(f"submission [bold]{submission.id}[/] queued (job {submission.job_id})")


@competitions_app.command("submissions")
def submissions(
    competition: Annotated[str, typer.Argument(help="the competition's name")],
    user: Annotated[str | None, typer.Option(help="whose submissions (default: this user)")] = None,
) -> None:
    """Your submissions with their state, public score and error (private scores only after the end)."""
    from oar.competitions.store import now

    core = _core()
    target = core.store.get(competition)
    ended = target.ended(now())
    rows = [
        [
            s.id,
            s.kind,
            s.source,
            s.status,
            s.public_score,
            s.private_score if ended else "hidden",
            "yes" if s.selected else "",
            s.error.split("\n")[0],
        ]
        for s in core.submissions(target, _user(user))
    ]
    _table(competition, ["id", "kind", "source", "status", "public", "private", "final", "error"], rows)


@competitions_app.command("leaderboard")
def leaderboard(
    competition: Annotated[str, typer.Argument(help="the competition's name")],
    board: Annotated[str, typer.Option(help="public, or private (after the end)")] = "public",
) -> None:
    """The public board (live) or the private one (revealed at the end); ties go to the earlier submission."""
    core = _core()
    entries = core.leaderboard(core.store.get(competition), board)
    rows = [
        [e.rank, e.user, f"{e.score:.4f}", e.entries, e.submitted_at.isoformat(timespec="seconds")] for e in entries
    ]
    _table(f"{competition}: {board} leaderboard", ["#", "user", "score", "entries", "submitted"], rows)


@competitions_app.command("select")
def select(
    competition: Annotated[str, typer.Argument(help="the competition's name")],
    submission_ids: Annotated[list[str], typer.Argument(help="the final submissions")],
    user: Annotated[str | None, typer.Option(help="whose submissions (default: this user)")] = None,
) -> None:
    """Pick the final submissions that count on the private board."""
    core = _core()
    core.select(core.store.get(competition), _user(user), submission_ids)
    console.print(f"{len(submission_ids)} final submission(s) selected")


@competitions_app.command("close")
def close(competition: Annotated[str, typer.Argument(help="the competition's name")]) -> None:
    """End the competition now: submissions stop, the private board is revealed."""
    core = _core()
    closed = core.close(core.store.get(competition))
    console.print(f"competition [bold]{closed.name}[/] ended at {closed.ends_at:%Y-%m-%d %H:%M:%S} UTC")
