"""The Litestar web layer: REST API (and later the agent UI, portal and admin)."""

from ticketcore.web.app import create_app

__all__ = ["create_app"]
