"""Reading the values of submitted forms: text fields, numbers and uploaded files."""

from __future__ import annotations

import base64

from litestar.datastructures import FormMultiDict, UploadFile

from ticketcore.domain.commands import AttachmentUpload
from ticketcore.errors import ValidationFailed


def text(form: FormMultiDict, name: str, default: str = "") -> str:
    """A text field, stripped (``default`` when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def optional_int(form: FormMultiDict, name: str) -> int | None:
    """An integer field; None when empty."""
    raw = text(form, name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be a number", field=name) from exc


def tags(form: FormMultiDict, name: str = "tags") -> list[str]:
    """Comma-separated tags."""
    return [t.strip() for t in text(form, name).split(",") if t.strip()]


async def attachments(form: FormMultiDict, name: str = "files") -> list[AttachmentUpload]:
    """The files uploaded in field ``name`` (an empty file input sends none)."""
    uploads: list[AttachmentUpload] = []
    for value in form.getall(name, []):
        if not isinstance(value, UploadFile) or not value.filename:
            continue
        data = await value.read()
        uploads.append(
            AttachmentUpload(
                filename=value.filename[-255:],
                content_type=value.content_type or "application/octet-stream",
                content_base64=base64.b64encode(data).decode(),
            )
        )
    return uploads
