"""The kernels every user's JupyterLab lists, and the settings every user's server runs with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from oar.notebooks.kernels import OAR_KERNEL, PADDLE_KERNEL, write_kernel_specs
from oar.notebooks.settings import NotebookSettings
from oar.notebooks.tickets import TicketReader, make_ticket


def test_the_oar_kernel_runs_this_python_and_paddle_appears_with_its_environment(tmp_path: Path) -> None:
    share = write_kernel_specs(tmp_path)
    oar = json.loads((share / "kernels" / OAR_KERNEL / "kernel.json").read_text())
    assert oar["display_name"] == "Python (oar, PyTorch)" and oar["argv"][0] == sys.executable
    paddle_python = Path(sys.prefix) / "paddle" / "bin" / "python"
    assert (share / "kernels" / PADDLE_KERNEL).exists() == paddle_python.exists()  # make paddle-env installs ipykernel
    server = json.loads((share / "config" / "jupyter_server_config.json").read_text())
    assert server["ContentsManager"]["pre_save_hook"] == "oar.notebooks.limits.refuse_large_notebooks"
    assert server["ServerApp"]["jpserver_extensions"] == {"oar.notebooks.activity": True}
    assert (tmp_path.stat().st_mode & 0o777) == 0o755  # the accounts must reach the specs


def test_a_ticket_works_once_and_only_with_the_studios_key() -> None:
    reader = TicketReader("k" * 40)
    ticket = make_ticket("k" * 40, "alice")
    assert reader.username(make_ticket("x" * 40, "alice")) is None
    assert reader.username(ticket) == "alice"
    assert reader.username(ticket) is None


def test_an_expired_ticket_is_refused() -> None:
    reader = TicketReader("k" * 40, max_age=-1)
    assert reader.username(make_ticket("k" * 40, "alice")) is None


def test_bad_settings_are_refused_with_a_message() -> None:
    from oar._core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="idle_timeout must be >= 20 s"):
        NotebookSettings(idle_timeout=5)
    with pytest.raises(InvalidInputError, match=r"memory_mb must be 0 \(no limit\) or >= 512"):
        NotebookSettings(memory_mb=100)
    with pytest.raises(InvalidInputError, match=r"max_processes 0 \(no limit\) or >= 64"):
        NotebookSettings(max_processes=3)
    assert NotebookSettings(idle_timeout=100).activity_every == 25  # a busy kernel is reported well in time
    assert NotebookSettings().activity_every == 300
    assert NotebookSettings.from_json(NotebookSettings().to_json()) == NotebookSettings()


def test_studio_user_names_map_to_accounts_that_cannot_be_system_ones() -> None:
    from oar.notebooks.accounts import system_name

    assert system_name("alice") == "nb-alice"
    assert system_name("root") == "nb-root"
    long = system_name("a" * 40)
    assert len(long) <= 32 and long.startswith("nb-")
    assert system_name("a.b") != system_name("a_b")


def test_resource_limits_write_cgroup_files_for_v1_and_v2(tmp_path) -> None:
    """The files a cgroup gets, on a fake hierarchy of each version (the real one is used by the studio
    tests where /sys/fs/cgroup is writable)."""
    from oar.notebooks.resources import ResourceLimits, cgroup_dirs, prepare_cgroups

    limits = ResourceLimits(memory_mb=1024, cpus=1.5, max_processes=100)
    v1 = tmp_path / "v1"
    for name in ("cpu", "memory"):
        (v1 / name).mkdir(parents=True)
    joins = prepare_cgroups("nb-alice", limits, v1)
    group = cgroup_dirs("nb-alice", v1)
    assert (group["memory"] / "memory.limit_in_bytes").read_text() == str(1024 << 20)
    assert (group["cpu"] / "cpu.cfs_quota_us").read_text() == "150000"
    assert joins == [group["cpu"] / "cgroup.procs", group["memory"] / "cgroup.procs"]
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("")
    (v2 / "oar-notebooks").mkdir()
    (v2 / "oar-notebooks" / "cgroup.subtree_control").write_text("")
    prepare_cgroups("nb-bob", limits, v2)
    assert (v2 / "oar-notebooks" / "nb-bob" / "memory.max").read_text() == str(1024 << 20)
    assert (v2 / "oar-notebooks" / "nb-bob" / "cpu.max").read_text() == "150000 100000"
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert prepare_cgroups("nb-carl", ResourceLimits(), v2) == []  # no limits: no group
