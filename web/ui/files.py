"""Attachment downloads for signed-in users (the service checks who may see which file)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Response, get
from litestar.params import FromPath

from ticketcore.web.ui.context import ViewerDep


class FileController(Controller):
    """``/files/{attachment_id}``"""

    include_in_schema = False

    @get("/files/{attachment_id:int}")
    async def download(self, attachment_id: FromPath[int], viewer: ViewerDep) -> Response[Any]:
        """The file as an attachment (never rendered inline)."""
        principal = viewer.require_user()
        info, data = await viewer.helpdesk.tickets.attachment(principal, attachment_id)
        return Response(
            data,
            media_type=info.content_type,
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.filename)}",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-store",
            },
        )
