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

    with pytest.raises(InvalidInputError, match="idle_timeout must be >= 60 s"):
        NotebookSettings(idle_timeout=5)
    assert NotebookSettings.from_json(NotebookSettings().to_json()) == NotebookSettings()


def test_studio_user_names_map_to_accounts_that_cannot_be_system_ones() -> None:
    from oar.notebooks.accounts import system_name

    assert system_name("alice") == "nb-alice"
    assert system_name("root") == "nb-root"
    long = system_name("a" * 40)
    assert len(long) <= 32 and long.startswith("nb-")
    assert system_name("a.b") != system_name("a_b")
