"""Chat: post notifications to Slack- or Mattermost-compatible incoming webhooks.

Each notification becomes one message ``{"text": ...}``: the ticket reference (a link when
``data["ticket_url"]`` is given; the number from ``data["ticket_number"]``, else ``#<id>``),
the subject in bold, then the body. ``format = "slack"`` (default) writes Slack's mrkdwn
(``<url|#12>``, ``*bold*``, ``&``, ``<`` and ``>`` escaped as Slack requires);
``format = "markdown"`` writes plain Markdown (``[#12](url)``, ``**bold**``), which Mattermost
renders natively.

Incoming-webhook URLs carry their token in the path: read them from the environment so that
they are redacted wherever the configuration is shown (URLs in logs and errors are always
shortened to ``scheme://host/…``)::

    [plugins]
    notifiers = ["chat"]

    [plugin.notifiers.chat]
    webhook_urls = [{ env = "TICKETCORE_SLACK_WEBHOOK" }]
    kinds = ["sla_warning", "sla_breach"]     # optional: every kind when empty

Failures behave as in the ``webhook`` notifier: a non-2xx answer or a network error fails the
notifier and the job worker retries it with backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ticketcore import Notification, hookimpl

from ._http import HttpPoster, PostingNotifier, kind_enabled

if TYPE_CHECKING:
    pass


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.notifiers.chat]``."""

    #: Incoming-webhook URLs (each gets every notification); read them from the environment.
    webhook_urls: list[str]
    #: ``slack`` (mrkdwn, escaped) or ``markdown`` (Mattermost's native format).
    format: Literal["slack", "markdown"] = "slack"
    #: Optional overrides of the webhook's default name, icon and channel.
    username: str | None = None
    icon_emoji: str | None = None
    channel: str | None = None
    #: Seconds to wait for each webhook before the attempt counts as failed.
    timeout_seconds: float = 5
    #: Notification kinds to post; empty posts every kind.
    kinds: list[str] = []


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ticket_reference(notification: Notification) -> str | None:
    """``#12`` from ``data["ticket_number"]`` or the ticket id; None when neither is known."""
    number = notification.data.get("ticket_number")
    if number:
        return str(number)
    if notification.ticket_id is not None:
        return f"#{notification.ticket_id}"
    return None


def chat_text(notification: Notification, format: str = "slack") -> str:
    """The message text for ``notification`` in ``slack`` mrkdwn or ``markdown``."""
    reference = ticket_reference(notification)
    url = notification.data.get("ticket_url")
    subject = " ".join(notification.subject.split())
    body = notification.body.strip()
    if format == "slack":
        subject, body = _slack_escape(subject), _slack_escape(body)
        ref = reference and _slack_escape(reference)
        link = f"<{url}|{ref}>" if url and ref else (f"<{url}>" if url else ref)
        head = f"*{subject}*" if subject else ""
    else:
        link = f"[{reference}]({url})" if url and reference else (url or reference)
        head = f"**{subject}**" if subject else ""
    first = " ".join(part for part in (link, head) if part)
    return f"{first}\n{body}" if body else first


class Chat(PostingNotifier):
    """Posts each notification as a message to Slack/Mattermost incoming webhooks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.poster = HttpPoster("chat", config.timeout_seconds)

    def payload(self, notification: Notification) -> dict[str, Any]:
        """The JSON object posted for ``notification``."""
        payload: dict[str, Any] = {"text": chat_text(notification, self.config.format)}
        for key in ("username", "icon_emoji", "channel"):
            value = getattr(self.config, key)
            if value:
                payload[key] = value
        return payload

    @hookimpl
    async def notify(self, notification: Notification) -> None:
        """Post the message to every webhook; raise if any did not answer 2xx."""
        if not kind_enabled(self.config.kinds, notification.kind):
            return
        body = msgspec.json.encode(self.payload(notification))
        headers = {"Content-Type": "application/json", "User-Agent": "TicketCore-Chat/1"}
        await self.poster.post_all(
            notification.idempotency_key,
            self.config.webhook_urls,
            lambda _url: (body, headers),
            kind=notification.kind,
            ticket_id=notification.ticket_id,
        )


def create(config: Config) -> Chat:
    """Entry point factory: check the settings; no I/O until ``startup``."""
    if not config.webhook_urls:
        raise ValueError("webhook_urls must name at least one URL")
    if any(not u.startswith(("http://", "https://")) for u in config.webhook_urls):
        raise ValueError("webhook_urls must be http(s) URLs")
    return Chat(config)
