"""``oar datasets|runs|models list|show``: read the hub."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from oar.cli.studio_remote import studio_hub
from oar.hub import Hub
from oar.serve.repository import parse_model_spec

console = Console()
datasets_app = typer.Typer(help="Datasets registered in the hub.", no_args_is_help=True)
runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Model versions.", no_args_is_help=True)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def _json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str, ensure_ascii=False))


@datasets_app.command("list")
def datasets_list() -> None:
    """List registered dataset versions (built-in ones register on first use)."""
    remote = studio_hub()
    if remote:
        rows = [
            [d["name"], d["latest_version"], d["owner"] or "-", d["visibility"]] for d in remote.all_pages("/datasets")
        ]
        _table(f"datasets on {remote.url}", ["name", "latest", "owner", "visibility"], rows)
        return
    from oar.data import BUILTIN_DATASETS

    rows = [
        [d.name, d.version, d.digest[:19], d.counts.get("train"), d.counts.get("test")] for d in Hub().datasets.list()
    ]
    _table("datasets", ["name", "version", "digest", "train", "test"], rows)
    console.print(f"built-in: {', '.join(BUILTIN_DATASETS)}")


@datasets_app.command("show")
def datasets_show(name: str, version: int | None = typer.Option(None, help="default: latest")) -> None:
    """Show a dataset's datacard, counts and digest; registers a built-in dataset on first use."""
    remote = studio_hub()
    if remote:
        latest = version or remote.get(f"/datasets/{name}")["latest_version"]
        _json(remote.get(f"/datasets/{name}/versions/{latest}"))
        return
    hub = Hub()
    from oar._core.errors import NotFoundError
    from oar.data import BUILTIN_DATASETS, load_builtin

    try:
        record = hub.datasets.get(name, version)
    except NotFoundError:
        if name not in BUILTIN_DATASETS or version is not None:
            raise
        record = hub.register_dataset(load_builtin(name))
    _json(
        {
            "name": record.name,
            "version": record.version,
            "digest": record.digest,
            "counts": record.counts,
            "card": record.card,
            "created_at": record.created_at,
        }
    )


@runs_app.command("list")
def runs_list() -> None:
    """List training runs."""
    remote = studio_hub()
    if remote:
        rows = [
            [
                r["id"],
                r["status"],
                f"{r['dataset_name']}:{r['dataset_version']}",
                _fmt(r["metrics"].get("test_accuracy")),
                r["metrics"].get("model", "-"),
                r["started_at"],
            ]
            for r in remote.all_pages("/runs")
        ]
        _table(f"runs on {remote.url}", ["id", "status", "dataset", "test acc", "model", "started"], rows)
        return
    rows = [
        [
            r.id,
            r.status,
            f"{r.dataset_name}:{r.dataset_version}",
            _fmt(r.metrics.get("test_accuracy")),
            r.metrics.get("model", "-"),
            r.started_at,
        ]
        for r in Hub().runs.list()
    ]
    _table("runs", ["id", "status", "dataset", "test acc", "model", "started"], rows)


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """Show a run's config, final metrics and evaluation history."""
    remote = studio_hub()
    if remote:
        shown = remote.get(f"/runs/{run_id}")
        _json(shown)
        _curves(shown["history"])
        return
    r = Hub().runs.get(run_id)
    _json(
        {
            "id": r.id,
            "status": r.status,
            "dataset": f"{r.dataset_name}:{r.dataset_version}",
            "config": r.config,
            "metrics": r.metrics,
            "history": r.history,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
        }
    )
    _curves(r.history)


@models_app.command("list")
def models_list() -> None:
    """List model versions."""
    remote = studio_hub()
    if remote:
        rows = [
            [m["name"], m["latest_version"], m["task"], m["owner"] or "-", m["visibility"], " ".join(m["tags"])]
            for m in remote.all_pages("/models")
        ]
        _table(f"models on {remote.url}", ["name", "latest", "task", "owner", "visibility", "tags"], rows)
        return
    rows = [
        [
            m.name,
            m.version,
            m.task,
            _fmt(m.manifest.get("metrics", {}).get("test_accuracy")),
            m.run_id,
            m.digest[:19],
        ]
        for m in Hub().models.list()
    ]
    _table("models", ["name", "version", "task", "test acc", "run", "digest"], rows)


@models_app.command("show")
def models_show(model: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS")) -> None:
    """Show a model version's manifest (signature, metrics, parity, lineage) and where it is stored."""
    remote = studio_hub()
    if remote:
        found = remote.get("/models/resolve", ref=model)
        _json(remote.get(f"/models/{found['name']}/versions/{found['version']}"))
        return
    m = Hub().models.get(*parse_model_spec(model))
    _json({"model_id": m.model_id, "digest": m.digest, "path": m.path, "manifest": m.manifest})


_BLOCKS = "▁▂▃▄▅▆▇█"


def _curves(history: list[dict[str, Any]], width: int = 60) -> None:
    """One sparkline per recorded metric over the run's steps: the curves at a glance."""
    for key in ("train_loss", "valid_loss", "valid_accuracy", "lr"):
        points = [(h["step"], h[key]) for h in history if isinstance(h.get(key), (int, float))]
        if len(points) < 2:
            continue
        values = [v for _, v in points]
        buckets = [values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)]
        means = [sum(b) / len(b) for b in buckets if b]
        low, high = min(means), max(means)
        line = "".join(_BLOCKS[int((v - low) / (high - low or 1) * (len(_BLOCKS) - 1))] for v in means)
        summary = f"{key:>14} {values[0]:9.4f} {line} {values[-1]:.4f}  (steps {points[0][0]}-{points[-1][0]})"
        console.print(summary, soft_wrap=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@models_app.command("alias")
def models_alias(
    alias: str = typer.Argument(..., help="NAME@ALIAS, e.g. chnsenti-cls@production"),
    version: int = typer.Argument(..., min=1, help="the version it should point at"),
) -> None:
    """Point NAME@ALIAS at a version (recorded in the alias audit log), on the studio when logged in."""
    from oar.hub import parse_model_ref

    ref = parse_model_ref(alias)
    if ref.alias is None:
        raise typer.BadParameter("give NAME@ALIAS")
    remote = studio_hub()
    if remote:
        remote.put(f"/models/{ref.name}/aliases/{ref.alias}", {"version": version})
    else:
        import getpass

        Hub().aliases.set(ref.name, ref.alias, version, actor=getpass.getuser())
    console.print(f"{ref.name}@{ref.alias} -> version {version}")


@models_app.command("aliases")
def models_aliases(name: str) -> None:
    """A model's aliases and the history of their changes (who, when, from which version to which)."""
    remote = studio_hub()
    if remote:
        events = remote.get(f"/models/{name}/aliases/history")
        rows = [
            [e["at"], f"@{e['alias']}", e["from_version"] or "new", e["to_version"] or "removed", e["actor"] or "-"]
            for e in events
        ]
    else:
        rows = [
            [e.at, f"@{e.alias}", e.from_version or "new", e.to_version or "removed", e.actor or "-"]
            for e in Hub().aliases.history(name)
        ]
    _table(f"aliases of {name}", ["when", "alias", "from", "to", "by"], rows)
