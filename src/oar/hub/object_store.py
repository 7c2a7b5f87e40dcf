"""Packages in an S3-compatible object store, read through a size-capped cache on each machine.

Layout under ``s3://bucket/prefix``: ``packages/<hex>/files/<path>`` for each file of a package and
``packages/<hex>/index.json`` (every file's size and SHA-256), written last: a package without its index
is an unfinished upload, never served. Uploads stream from disk (multipart above
``OAR_ARTIFACTS_MULTIPART_MB``, 8 MiB by default); downloads land in a temporary directory, each file
is checked against the index and the whole against the package digest, and only then is it renamed
into the cache, so a corrupted or tampered object is refused with an error naming the file.

Credentials, region and endpoint come from the usual AWS settings (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph, R2, ...;
``~/.aws``; an instance role). ``OAR_ARTIFACTS_CACHE_MB`` caps the cache (10 GiB by default): the least
recently used packages leave it first.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from oar._core.digest import sha256_file, sha256_tree
from oar._core.errors import IntegrityError, NotFoundError, OarError
from oar.hub.artifacts import ArtifactStore

INDEX = "index.json"
_MIB = 1 << 20


class ObjectArtifactStore(ArtifactStore):
    def __init__(self, root: Path, url: str) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError:
            raise OarError("OAR_ARTIFACTS_URL=s3://... needs boto3: pip install 'oar-platform[s3]'") from None
        super().__init__(root)
        parsed = urlparse(url)
        if not parsed.netloc:
            raise OarError(f"bad OAR_ARTIFACTS_URL '{url}': use s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.cache = root / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.cache_cap = int(float(os.environ.get("OAR_ARTIFACTS_CACHE_MB", "10240")) * _MIB)
        part = int(float(os.environ.get("OAR_ARTIFACTS_MULTIPART_MB", "8")) * _MIB)
        self._transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=max(part, 5 * _MIB))
        timeouts = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"})
        self._s3: Any = boto3.client("s3", config=timeouts)

    @property
    def location(self) -> str:
        return self.url

    def package_path(self, digest: str) -> Path:
        return self.cache / _hex(digest)

    def commit_package(self, staged: Path) -> tuple[str, Path]:
        """Upload ``staged`` (unless the store already holds that content), then keep it in the cache.

        Raises if any part of the upload fails: the index is written last, so the caller registers
        nothing and the store shows no package.
        """
        digest = sha256_tree(staged)
        if not self._has(digest):
            self._upload(digest, staged)
        final = self.package_path(digest)
        if final.exists():
            shutil.rmtree(staged)
        else:
            staged.rename(final)
        self._trim(keep=final)
        return digest, final

    def fetch(self, digest: str) -> Path:
        final = self.package_path(digest)
        if final.is_dir():
            os.utime(final)  # recently used: the last to leave the cache
            return final
        index = self._index(digest)
        target = self.staging_dir()
        try:
            for rel, entry in index["files"].items():
                file = _inside(target, rel)
                file.parent.mkdir(parents=True, exist_ok=True)
                self._s3.download_file(self.bucket, self._key(digest, f"files/{rel}"), str(file), Config=self._transfer)
                if sha256_file(file) != entry["sha256"]:
                    raise IntegrityError(
                        f"package {digest} in {self.url}: {rel} does not match its recorded digest; "
                        "the object was changed or corrupted, refusing it"
                    )
            if sha256_tree(target) != digest:
                raise IntegrityError(f"package {digest} in {self.url} does not match its digest; refusing it")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        try:
            target.rename(final)
        except OSError:  # fetched at the same moment by another process
            shutil.rmtree(target, ignore_errors=True)
        self._trim(keep=final)
        return final

    def digests(self) -> Iterator[str]:
        """Every package with an index (a finished upload) in the store."""
        pages = self._s3.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self._key("", ""), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                hex_digest = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if self._has(f"sha256:{hex_digest}"):
                    yield f"sha256:{hex_digest}"

    def stored_at(self, digest: str) -> datetime:
        """When the upload finished (its index was written)."""
        return self._s3.head_object(Bucket=self.bucket, Key=self._key(digest, INDEX))["LastModified"]

    def size(self, digest: str) -> int:
        return sum(int(e["size"]) for e in self._index(digest)["files"].values())

    def read_file(self, digest: str, rel: str) -> bytes:
        """One file of a stored package, read from the store (the cache is left alone)."""
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(digest, f"files/{rel}"))["Body"].read()
        except Exception as error:
            raise NotFoundError(f"package {digest} in {self.url} has no readable {rel}: {error}") from error

    def remove(self, digest: str) -> None:
        """Index first (the package stops existing), then its files."""
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(digest, INDEX))
        pages = self._s3.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self._key(digest, "")):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        shutil.rmtree(self.package_path(digest), ignore_errors=True)

    def _upload(self, digest: str, staged: Path) -> None:
        files = {}
        try:
            for path in sorted(p for p in staged.rglob("*") if p.is_file()):
                rel = path.relative_to(staged).as_posix()
                files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
                self._s3.upload_file(str(path), self.bucket, self._key(digest, f"files/{rel}"), Config=self._transfer)
            body = json.dumps({"digest": digest, "files": files}, indent=1).encode()
            self._s3.put_object(Bucket=self.bucket, Key=self._key(digest, INDEX), Body=body)
        except Exception as error:
            raise OarError(f"could not upload package {digest} to {self.url}: {error}") from error

    def _index(self, digest: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(digest, INDEX))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(f"package {digest} is not in {self.url} (or its upload never finished)") from None
            raise OarError(f"could not read package {digest} from {self.url}: {error}") from error
        try:
            index = json.loads(body)
            if index["digest"] != digest or not isinstance(index["files"], dict):
                raise ValueError("wrong digest")
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"package {digest} in {self.url} has a damaged index; refusing it") from None
        return index

    def _has(self, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(digest, INDEX))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise OarError(f"could not reach {self.url}: {error}") from error
        return True

    def _key(self, digest: str, rest: str) -> str:
        parts = [self.prefix, "packages", _hex(digest) if digest else ""]
        return "/".join(p for p in parts if p) + "/" + rest

    def _trim(self, keep: Path) -> None:
        """Drop the least recently used packages until the cache fits its cap (never ``keep``)."""
        entries = []
        for path in self.cache.iterdir():
            if path.is_dir():
                size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                entries.append((path.stat().st_mtime, size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.cache_cap:
                break
            if path != keep:
                shutil.rmtree(path, ignore_errors=True)
                total -= size


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _inside(root: Path, rel: str) -> Path:
    """``root / rel``, refusing a path from the index that would leave ``root``."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()) or not rel:
        raise IntegrityError(f"a package index names the path '{rel}', outside the package; refusing it")
    return path
