"""``oar serve --auth-token-file``: a file that is not one sha256 digest fails at start with one message
(the console wraps long lines, so whitespace is compared loosely)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(60)
@pytest.mark.parametrize("content", ["not a digest", "ab" * 31, ""])
def test_a_bad_token_digest_file_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    digest = tmp_path / "token.sha256"
    digest.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "oar.cli.serve_main", "--port", "0", "--auth-token-file", str(digest)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 1
    message = f"error: --auth-token-file {digest} must hold one sha256 hex digest (64 hex digits)"
    assert " ".join(done.stderr.split()) == message


@pytest.mark.timeout(60)
def test_a_missing_token_digest_file_is_refused_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "serve", "--auth-token-file", str(missing)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 1
    assert " ".join(done.stderr.split()).startswith(f"error: cannot read --auth-token-file {missing}")
    assert "Traceback" not in done.stderr
