"""Passwords are stored as salted scrypt hashes and checked in constant time."""

from __future__ import annotations

import pytest

from ticketcore.app import App
from ticketcore.domain.commands import NewUser
from ticketcore.domain.enums import Role
from ticketcore.errors import NotAuthenticated, ValidationFailed
from ticketcore.services.auth import hash_password, verify_password


def test_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$")
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    assert not verify_password("correct horse", None)
    assert not verify_password("correct horse", "md5$abc")


async def test_password_sign_in(helpdesk: App) -> None:
    user = await helpdesk.auth.create_user(
        NewUser(email="Pat@Example.org", name="Pat", role=Role.AGENT, password="long enough")
    )
    signed_in = await helpdesk.auth.authenticate_password("pat@example.org", "long enough")
    assert signed_in.id == user.id
    with pytest.raises(NotAuthenticated):
        await helpdesk.auth.authenticate_password("pat@example.org", "not it")
    with pytest.raises(NotAuthenticated):
        await helpdesk.auth.authenticate_password("nobody@example.org", "long enough")
    with pytest.raises(ValidationFailed) as short:
        await helpdesk.auth.create_user(
            NewUser(email="sam@example.org", name="Sam", role=Role.AGENT, password="short")
        )
    assert short.value.field == "password"
