"""Server-rendered pages: sign-in, the agent workspace, the customer portal and admin.

`ui_routes()` returns the router of every page and the static files; ``create_app`` mounts it.
"""

from ticketcore.web.ui.router import ui_routes

__all__ = ["ui_routes"]
