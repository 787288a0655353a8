"""Attachment storage: size-limited, content-addressed by SHA-256 on disk."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

import msgspec

from ticketcore.config import Limits
from ticketcore.domain.commands import AttachmentUpload
from ticketcore.errors import ValidationFailed

_SAFE_NAME = re.compile(r"[\x00-\x1f/\\]")


class StoredFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file written to storage, ready to be recorded on an entry."""

    filename: str
    content_type: str
    size: int
    sha256: str


class AttachmentStore:
    """Writes and reads attachment bytes under one folder."""

    def __init__(self, root: str | Path, limits: Limits) -> None:
        self.root = Path(root)
        self.limits = limits

    def path_for(self, sha256: str) -> Path:
        """Where the bytes with this checksum live."""
        return self.root / sha256[:2] / sha256

    def decode_all(
        self,
        uploads: list[AttachmentUpload],
        field: str = "attachments",
    ) -> list[tuple[AttachmentUpload, bytes]]:
        """Decode and check every upload before anything is written (all or nothing)."""
        if len(uploads) > self.limits.max_attachments_per_entry:
            raise ValidationFailed(
                f"at most {self.limits.max_attachments_per_entry} attachments per entry",
                field=field,
            )
        decoded = []
        for i, upload in enumerate(uploads):
            try:
                data = base64.b64decode(upload.content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValidationFailed(
                    f"not valid base64: {exc}", field=f"{field}[{i}].content_base64"
                ) from exc
            if len(data) > self.limits.max_attachment_bytes:
                raise ValidationFailed(
                    f"{upload.filename!r} is {len(data)} bytes; the limit is "
                    f"{self.limits.max_attachment_bytes}",
                    field=f"{field}[{i}]",
                )
            decoded.append((upload, data))
        return decoded

    def store(self, filename: str, content_type: str, data: bytes) -> StoredFile:
        """Write bytes (once per distinct content) and return what to record."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)  # atomic: readers never see a half-written file
        name = _SAFE_NAME.sub("_", filename).strip() or "attachment"
        return StoredFile(
            filename=name[:255],
            content_type=content_type or "application/octet-stream",
            size=len(data),
            sha256=digest,
        )

    def read(self, sha256: str) -> bytes:
        """The bytes of a stored attachment."""
        return self.path_for(sha256).read_bytes()
