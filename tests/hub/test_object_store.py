"""Packages on an S3 API (moto's server, started here over HTTP, real boto3 client): two machines with
different OAR_HOME directories share one hub through the object store and a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from oar._core.errors import IntegrityError, NotFoundError, OarError
from oar.hub import Hub

from .packages import small_package as _package

pytest.importorskip("boto3")
pytestmark = pytest.mark.timeout(120)


def _machines(tmp_path: Path, bucket: str) -> tuple[Hub, Hub]:
    """Two hubs on one database and one bucket, each with its own OAR_HOME (its own cache)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = f"s3://{bucket}/hub"
    return Hub(tmp_path / "a", url, store), Hub(tmp_path / "b", url, store)


def test_a_package_registered_on_one_machine_opens_on_another(s3, tmp_path):
    client, bucket = s3
    a, b = _machines(tmp_path, bucket)
    registered = a.register_model(_package(tmp_path / "src"), "shared")
    assert not (tmp_path / "b" / "artifacts" / "cache").joinpath(registered.digest.removeprefix("sha256:")).exists()
    opened = b.open_package("shared", 1)
    assert opened.path.is_relative_to(tmp_path / "b")
    assert (opened.path / "model.onnx").read_bytes() == (registered.path / "model.onnx").read_bytes()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    hex_digest = registered.digest.removeprefix("sha256:")
    assert f"hub/packages/{hex_digest}/index.json" in keys
    assert f"hub/packages/{hex_digest}/files/extra/labels.txt" in keys
    assert list(b.artifacts.digests()) == [registered.digest]
    a.close(), b.close()


def test_a_large_file_goes_up_in_parts(s3, tmp_path, monkeypatch):
    client, bucket = s3
    monkeypatch.setenv("OAR_ARTIFACTS_MULTIPART_MB", "5")
    a, b = _machines(tmp_path, bucket)
    registered = a.register_model(_package(tmp_path / "src", size=11 * (1 << 20), seed=None), "big")
    key = f"hub/packages/{registered.digest.removeprefix('sha256:')}/files/model.onnx"
    assert client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-3")  # three parts
    assert b.open_package("big").manifest.files == registered.manifest["files"]
    a.close(), b.close()


def test_a_corrupted_object_is_refused_and_never_cached(s3, tmp_path):
    client, bucket = s3
    a, b = _machines(tmp_path, bucket)
    registered = a.register_model(_package(tmp_path / "src"), "m")
    key = f"hub/packages/{registered.digest.removeprefix('sha256:')}/files/model.onnx"
    client.put_object(Bucket=bucket, Key=key, Body=b"flipped bits")
    with pytest.raises(IntegrityError, match=r"model\.onnx does not match its recorded digest"):
        b.open_package("m")
    assert not b.artifacts.package_path(registered.digest).exists()
    assert not any((tmp_path / "b" / "artifacts" / "tmp").iterdir())
    a.close(), b.close()


def test_an_unfinished_upload_is_not_a_package(s3, tmp_path):
    client, bucket = s3
    a, b = _machines(tmp_path, bucket)
    registered = a.register_model(_package(tmp_path / "src"), "m")
    client.delete_object(Bucket=bucket, Key=f"hub/packages/{registered.digest.removeprefix('sha256:')}/index.json")
    with pytest.raises(NotFoundError, match="upload never finished"):
        b.open_package("m")
    assert list(b.artifacts.digests()) == []
    a.close(), b.close()


def test_a_failed_upload_registers_no_version(s3, tmp_path):
    _, bucket = s3
    hub = Hub(tmp_path / "a", f"sqlite:///{tmp_path / 'shared.db'}", f"s3://{bucket}-missing/hub")
    with pytest.raises(OarError, match="could not"):
        hub.register_model(_package(tmp_path / "src"), "m")
    assert hub.models.list() == [] and hub.model_catalog.search().total == 0
    assert not any((tmp_path / "a" / "artifacts" / "tmp").iterdir())
    hub.close()


def test_the_cache_keeps_to_its_cap(s3, tmp_path, monkeypatch):
    _, bucket = s3
    monkeypatch.setenv("OAR_ARTIFACTS_CACHE_MB", "0.05")  # ~52 KB: room for one 40 KB package
    a, b = _machines(tmp_path, bucket)
    first = a.register_model(_package(tmp_path / "p1", size=40_000, seed=1), "one")
    second = a.register_model(_package(tmp_path / "p2", size=40_000, seed=2), "two")
    assert not a.artifacts.package_path(first.digest).exists() and a.artifacts.package_path(second.digest).exists()
    assert b.open_package("one").path.exists()  # fetched again from the store, verified
    assert (a.open_package("one").path / "model.onnx").stat().st_size == 40_000
    assert not a.artifacts.package_path(second.digest).exists()
    a.close(), b.close()


def test_gc_on_the_object_store_names_the_model_and_owner_of_what_it_would_reclaim(s3, tmp_path):
    from datetime import timedelta

    from oar.hub import housekeeping

    _, bucket = s3
    a, b = _machines(tmp_path, bucket)
    orphan = a.register_model(_package(tmp_path / "src", size=3000), "orphan", owner="erin")
    a.models.delete("orphan", orphan.version)  # the row only: its package is now unreferenced
    (found,) = housekeeping.unreferenced(b, timedelta(0))  # machine B never cached it
    assert (found.digest, found.model, found.owner) == (orphan.digest, "orphan", "erin")
    assert found.size == a.artifacts.size(orphan.digest) and not b.artifacts.package_path(orphan.digest).exists()
    a.close(), b.close()
