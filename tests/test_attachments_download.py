"""Attachments come back byte for byte, with their type, to those who may see their entry."""

from __future__ import annotations

import base64
import hashlib

import httpx

from ticketcore.testing import Seed

PDF = b"%PDF-1.4 tiny test file \x00\x01\x02"


def _upload(name: str, data: bytes, content_type: str) -> dict[str, str]:
    return {
        "filename": name,
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode(),
    }


async def test_download_checks_entry_visibility(api: httpx.AsyncClient, seed: Seed) -> None:
    created = await api.post(
        "/api/v1/tickets",
        headers=seed.headers("customer"),
        json={
            "subject": "Invoice attached",
            "body": "see file",
            "attachments": [_upload("facture été.pdf", PDF, "application/pdf")],
        },
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    note = await api.post(
        f"/api/v1/tickets/{ticket_id}/notes",
        headers=seed.headers("agent"),
        json={"body": "internal log", "attachments": [_upload("log.txt", b"secret", "text/plain")]},
    )
    assert note.status_code == 201, note.text
    public_file = (
        await api.get(f"/api/v1/tickets/{ticket_id}/entries", headers=seed.headers("customer"))
    ).json()[0]["attachments"][0]
    note_file = note.json()["attachments"][0]

    got = await api.get(
        f"/api/v1/attachments/{public_file['id']}", headers=seed.headers("customer")
    )
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers["content-type"].startswith("application/pdf")
    assert got.headers["etag"] == f'"{hashlib.sha256(PDF).hexdigest()}"'
    assert "filename*=UTF-8''facture%20%C3%A9t%C3%A9.pdf" in got.headers["content-disposition"]

    # The customer cannot fetch the note's file; another customer cannot fetch either.
    hidden = await api.get(
        f"/api/v1/attachments/{note_file['id']}", headers=seed.headers("customer")
    )
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    stranger = await api.get(
        f"/api/v1/attachments/{public_file['id']}", headers=seed.headers("other_customer")
    )
    assert stranger.status_code == 404
    staff = await api.get(f"/api/v1/attachments/{note_file['id']}", headers=seed.headers("agent"))
    assert staff.status_code == 200 and staff.content == b"secret"
