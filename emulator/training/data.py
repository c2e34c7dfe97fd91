"""S3 data as training and transform jobs see it: channels (S3Prefix, ManifestFile, AugmentedManifestFile), listing,
tarballs unpacked without leaving their directory. Reads and writes go through the labeling jobs' `Storage` (moto's
in-process backends), so jobs see exactly what boto3 clients see through the endpoint."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path, PurePosixPath

from moto.s3.models import s3_backends

from emulator.labeling.storage import S3Location, Storage, StorageError

__all__ = ["DataError", "S3Data", "S3Location", "StorageError", "safe_extract", "tar_directory"]


class DataError(Exception):
    """Input the job cannot use; the message is written for a FailureReason."""


class S3Data:
    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or Storage()

    def read(self, uri: str) -> bytes:
        return self.storage.read(uri)

    def write(self, uri: str, data: bytes | str) -> None:
        self.storage.write(S3Location.parse(uri), data)

    def list_prefix(self, uri: str) -> list[str]:
        """The keys under an S3 prefix, in key order (the order the service processes them in)."""
        loc = S3Location.parse(uri)
        try:
            bucket = s3_backends[self.storage.account_id]["aws"].get_bucket(loc.bucket)
        except Exception as exc:  # moto's MissingBucket
            raise DataError(f"cannot list {loc.uri}: {type(exc).__name__}") from exc
        return sorted(k for k in list(bucket.keys.keys()) if k.startswith(loc.key) and not k.endswith("/"))

    def objects(self, data_source: dict, what: str) -> list[tuple[str, str]]:
        """(name relative to the source, s3 URI) of every object an S3DataSource names (S3Prefix / ManifestFile)."""
        uri = data_source["S3Uri"]
        kind = data_source.get("S3DataType", "S3Prefix")
        loc = S3Location.parse(uri)
        if kind == "S3Prefix":
            keys = self.list_prefix(uri)
            if not keys:
                raise DataError(f"No S3 objects found under S3 URL {uri!r} given in {what}")
            return [(_relative(k, loc.key), f"s3://{loc.bucket}/{k}") for k in keys]
        if kind == "ManifestFile":
            try:
                entries = json.loads(self.read(uri))
            except (StorageError, ValueError) as exc:
                raise DataError(f"cannot read the manifest file {uri} given in {what}: {exc}") from exc
            if not (isinstance(entries, list) and entries and isinstance(entries[0], dict) and "prefix" in entries[0]):
                raise DataError(f'manifest file {uri} must be a JSON list starting with {{"prefix": "s3://..."}}')
            prefix = entries[0]["prefix"]
            return [(str(rel), prefix.rstrip("/") + "/" + str(rel).lstrip("/")) for rel in entries[1:]]
        raise DataError(f"S3DataType {kind} is not supported for {what} (S3Prefix, ManifestFile)")

    def augmented_manifest(self, uri: str, attribute_names: list[str], what: str) -> list[dict]:
        """The records of an augmented manifest, each cut down to `attribute_names`; a line without one is an
        error naming its number (the service fails the job too)."""
        try:
            raw = self.read(uri)
        except StorageError as exc:
            raise DataError(f"cannot read the augmented manifest {uri} given in {what}: {exc}") from exc
        records = []
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"augmented manifest {uri} line {number} is not valid JSON: {exc.msg}") from exc
            missing = [name for name in attribute_names if not isinstance(record, dict) or name not in record]
            if missing:
                raise DataError(f"augmented manifest {uri} line {number} has no attribute {missing[0]!r}")
            records.append({name: record[name] for name in attribute_names})
        return records


def _relative(key: str, base: str) -> str:
    rel = key[len(base) :].lstrip("/") if key.startswith(base) else key
    return rel or key.rsplit("/", 1)[-1]


def safe_path(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that would land outside `root` (absolute paths, `..`)."""
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise DataError(f"refusing path {relative!r}: it would leave its directory")
    path = (root / Path(*parts)).resolve() if parts else root.resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"refusing path {relative!r}: it would leave its directory")
    return path


def safe_extract(data: bytes, root: Path, what: str) -> None:
    """Unpack a (gzipped) tarball into `root`: regular files and directories only, every one inside `root`."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                if member.isdir():
                    safe_path(root, member.name).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise DataError(f"{what} holds {member.name!r}, which is not a regular file (links are refused)")
                target = safe_path(root, member.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                target.write_bytes(source.read() if source else b"")
    except tarfile.TarError as exc:
        raise DataError(f"{what} is not a readable tar archive: {exc}") from exc


def tar_directory(root: Path) -> bytes:
    """A gzipped tarball of everything under `root`, paths relative to it (the model.tar.gz layout)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return buffer.getvalue()
