"""``oar datasets|runs|models list|show``, ``oar models delete``: read (and prune) the hub."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oar._core.errors import InvalidInputError, NotFoundError, OarError
from oar._core.settings import oar_home
from oar.cli.served import servers_holding
from oar.cli.studio_remote import studio_hub
from oar.hub import Hub, ModelVersion, Run
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
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)


def _json(value: Any) -> None:
    """Plain JSON on stdout (no markup, no wrapping), so it pipes into ``jq`` or ``json.loads``."""
    typer.echo(json.dumps(value, default=str, ensure_ascii=False, indent=2))


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
def runs_show(
    run_id: str, as_json: bool = typer.Option(False, "--json", help="the full record: config, every history row")
) -> None:
    """Show a run: status, final metrics, the main settings, its curves and evaluations (--json: everything)."""
    remote = studio_hub()
    if remote:
        shown = remote.get(f"/runs/{run_id}")
        if as_json:
            _json(shown)
            return
        console.print(f"[bold]run {escape(run_id)}[/] {escape(str(shown.get('status')))} on {remote.url}")
        metrics = "  ".join(f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in shown["metrics"].items())
        console.print(f"metrics  {escape(metrics) or '-'}", soft_wrap=True, highlight=False)
        _curves(shown["history"])
        _evaluations(shown["history"])
        return
    r = Hub().runs.get(run_id)
    if as_json:
        _json(_run_record(r))
        return
    took = f" in {(r.finished_at - r.started_at).total_seconds():.0f} s" if r.finished_at and r.started_at else ""
    console.print(
        f"[bold]run {escape(r.id)}[/] {escape(r.status)}{took}, {r.kind} on {r.dataset_name}:{r.dataset_version}"
    )
    console.print(f"started {r.started_at}", highlight=False)
    metrics = "  ".join(f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in r.metrics.items())
    console.print(f"metrics  {escape(metrics) or '-'}", soft_wrap=True, highlight=False)
    settings = "  ".join(f"{k}={v}" for k, v in _flat(r.config).items())
    console.print(f"config   {escape(settings) or '-'}", highlight=False)
    _curves(r.history)
    _evaluations(r.history)
    console.print(f"full record: oar runs show {r.id} --json", highlight=False)


def _run_record(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status,
        "dataset": f"{r.dataset_name}:{r.dataset_version}",
        "config": r.config,
        "metrics": r.metrics,
        "history": r.history,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``trainer.lr=0.002``: every set scalar, one level of dots per nesting; checkpoint plumbing left out."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("checkpoint", "model_name") or value is None:
            continue
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_EVALUATION_ROWS = 12


def _evaluations(history: list[dict[str, Any]]) -> None:
    """The evaluation points (rows with validation metrics) as a small table, thinned to a dozen rows."""
    rows = [h for h in history if "valid_accuracy" in h or "valid_loss" in h]
    if not rows:
        return
    if len(rows) > _EVALUATION_ROWS:
        stride = len(rows) / (_EVALUATION_ROWS - 1)
        rows = [rows[int(i * stride)] for i in range(_EVALUATION_ROWS - 1)] + [rows[-1]]
    columns = ["step", "epoch", "train_loss", "valid_loss", "valid_accuracy"]
    if any("valid_auc" in h for h in rows):
        columns.append("valid_auc")
    _table("evaluations", columns, [[_cell(h.get(c)) for c in columns] for h in rows])


def _cell(value: Any) -> str:
    return _fmt(value) if isinstance(value, float) else "-" if value is None else str(value)


@models_app.command("list")
def models_list() -> None:
    """List model versions; a variant (quantized, ...) is its own model, labelled with what it is a variant of."""
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
            _variant(m),
            _fmt(m.manifest.get("metrics", {}).get("test_accuracy")),
            m.run_id,
            m.digest[:19],
        ]
        for m in Hub().models.list()
    ]
    _table("models", ["name", "version", "task", "variant", "test acc", "run", "digest"], rows)


def _variant(m: ModelVersion) -> str:
    label = m.manifest.get("variant")
    return f"{label} of {m.parent}" if label else "-"


@models_app.command("show")
def models_show(model: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS")) -> None:
    """Show a model version's manifest (signature, metrics, parity, lineage) and where it is stored."""
    remote = studio_hub()
    if remote:
        found = remote.get("/models/resolve", ref=model)
        _json(remote.get(f"/models/{found['name']}/versions/{found['version']}"))
        return
    hub = Hub()
    m = hub.models.get(*parse_model_spec(model))
    here = m.path if m.path.is_dir() else None  # an object store's package is here once a command fetched it
    _json(
        {
            "model_id": m.model_id,
            "digest": m.digest,
            "store": hub.artifacts.location,
            "path": here,
            "manifest": m.manifest,
        }
    )


@models_app.command("delete")
def models_delete(
    model: str = typer.Argument(..., help="NAME:VERSION (one version; the version is required)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="delete without asking"),
) -> None:
    """Delete one model version and its files; refused while `oar serve` serves it or a variant derives from it."""
    name, version = parse_model_spec(model)
    if version is None:
        raise InvalidInputError(f"name the version to delete: oar models delete {name}:VERSION")
    hub = Hub()
    target = hub.models.get(name, version)
    serving = servers_holding(oar_home(), target.model_id)
    if serving:
        server = serving[0]
        raise OarError(
            f"{target.model_id} is being served by oar serve (pid {server['pid']}, {server.get('address')}); "
            "stop it first"
        )
    derived = sorted(m.model_id for m in hub.models.list() if m.parent == target.model_id)
    if derived:
        raise OarError(f"{target.model_id} is the parent of {', '.join(derived)}; delete those first")
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInputError(f"deleting {target.model_id} cannot be undone; add --yes to confirm")
        typer.confirm(f"delete {target.model_id} ({target.digest[:19]}) and its files?", abort=True)
    hub.delete_model(name, version)
    console.print(f"deleted {escape(target.model_id)}", highlight=False)


@models_app.command("register")
def models_register(
    directory: str = typer.Argument(..., help="a package directory (manifest.json + files), e.g. from oar.jit.save"),
    name: str = typer.Option(None, help="register under this name (default: the manifest's)"),
) -> None:
    """Validate a package (manifest, file digests, no unlisted files, the model loads) and register it."""
    from oar.export.registration import register_package

    registered = register_package(Hub(), directory, name)
    console.print(f"registered [bold]{registered.model_id}[/] ({registered.task}, {registered.digest[:19]})")


_BLOCKS = "▁▂▃▄▅▆▇█"


def _curves(history: list[dict[str, Any]], width: int = 60) -> None:
    """One sparkline per recorded metric over the run's steps: the curves at a glance."""
    for key in ("train_loss", "valid_loss", "valid_accuracy", "valid_auc", "lr"):
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


hub_app = typer.Typer(help="The hub itself: storage per owner, unreferenced packages.", no_args_is_help=True)


def _held_by_live_work(hub: Hub) -> set[str]:
    """Digests that running deployments serve. Raises if one serves a version the hub no longer has
    (its files cannot be told apart from garbage), or while jobs run (one may be registering a package)."""
    from sqlalchemy import select

    from oar.jobs.entities import ACTIVE
    from oar.jobs.store import JobStore
    from oar.studio.orm import DeploymentRow

    running = JobStore.open(hub).list(states=ACTIVE)
    if running:
        raise OarError(f"{len(running)} job(s) running; a job may hold a package no version names yet: gc after them")
    held = set()
    with hub.sessions() as session:
        live = session.execute(
            select(DeploymentRow.id, DeploymentRow.model, DeploymentRow.version).where(
                DeploymentRow.status.in_(("starting", "running", "backoff", "rolling"))
            )
        ).all()
    for deployment, model, version in live:
        if version is None:
            continue
        try:
            held.add(hub.models.get(model, version).digest)
        except NotFoundError:
            raise OarError(
                f"deployment {deployment} serves {model}:{version}, which the hub no longer has: "
                "stop it before collecting garbage"
            ) from None
    return held


@hub_app.command("gc")
def hub_gc(
    apply: bool = typer.Option(False, "--apply", help="remove them (default: only list what would go)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only list what would go (the default; not with --apply)"),
    grace_hours: float = typer.Option(24.0, help="never remove a package stored less than this long ago"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List (then, with --apply, remove) packages that no model version references."""
    from datetime import timedelta

    from oar.hub import housekeeping

    if grace_hours < 0:
        raise InvalidInputError("bad --grace-hours: use 0 or more")
    if apply and dry_run:
        raise InvalidInputError("--apply and --dry-run contradict each other: give one")
    hub = Hub()
    held = _held_by_live_work(hub)
    garbage = housekeeping.unreferenced(hub, timedelta(hours=grace_hours), keep=held)
    removed = housekeeping.remove(hub, garbage, keep=held) if apply else []
    if json_out:
        items = [
            {"digest": g.digest, "bytes": g.size, "stored_at": g.stored_at, "model": g.model, "owner": g.owner}
            for g in garbage
        ]
        by_owner = [{"owner": o, "bytes": b} for o, b in housekeeping.reclaimable_by_owner(garbage).items()]
        removed_digests = [r.digest for r in removed]
        _json(
            {"store": hub.artifacts.location, "unreferenced": items, "by_owner": by_owner, "removed": removed_digests}
        )
        return
    rows = [
        [g.digest[:23], g.model or "?", g.owner or "-", g.size, g.stored_at.isoformat(timespec="seconds")]
        for g in garbage
    ]
    _table(f"unreferenced packages in {hub.artifacts.location}", ["digest", "model", "owner", "bytes", "stored"], rows)
    total = sum(g.size for g in garbage)
    if apply:
        console.print(f"removed {len(removed)} package(s), {sum(r.size for r in removed):,} bytes")
        return
    console.print(f"{len(garbage)} package(s), {total:,} bytes would go: run again with --apply to remove them")
    if garbage:
        owners = housekeeping.reclaimable_by_owner(garbage).items()
        shares = ", ".join(f"{owner or 'no owner known'} {size:,}" for owner, size in owners)
        console.print(f"reclaimable bytes per owner: {shares}", soft_wrap=True, highlight=False)


@hub_app.command("reindex")
def hub_reindex() -> None:
    """Number SQLite's model-name index in listing order again, so search reads it newest first."""
    from oar.hub import name_search

    hub = Hub()
    with hub.sessions() as session:
        numbered = name_search.renumber(session)
        session.commit()
    if hub.engine.dialect.name != "sqlite":
        console.print("nothing to do: PostgreSQL's name index keeps no order")
    else:
        console.print(f"numbered {numbered:,} names in listing order; search reads the index newest first")


@hub_app.command("storage")
def hub_storage(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Versions and bytes per owner: models (a package several versions share counts once) and datasets."""
    report = Hub().storage()
    if json_out:
        owners = [{**u.__dict__, "bytes": u.bytes} for u in report.owners]
        _json({"owners": owners, "model_bytes": report.model_bytes, "dataset_bytes": report.dataset_bytes})
        return
    rows = [
        [u.owner or "-", u.model_versions, u.packages, u.model_bytes, u.dataset_versions, u.dataset_bytes, u.bytes]
        for u in report.owners
    ]
    columns = ["owner", "model versions", "packages", "model bytes", "dataset versions", "dataset bytes", "bytes"]
    _table("storage per owner", columns, rows)
    console.print(f"the hub holds {report.bytes:,} bytes (a package several owners share counted once)")
