"""Decide whether an inbound mail is a person writing to us, or machinery answering.

A helpdesk that opens tickets for bounces, vacation replies or list traffic floods its queue
and, worse, can answer them: two auto-responders then mail each other forever. ``screen_mail``
sorts a :class:`ParsedMail` into one :class:`MailKind`; only ``NORMAL`` creates a ticket.

Which signal wins, in this order (the first that matches decides):

1. **Loop** - an ``X-Loop`` value that is one of our tokens, or a Message-ID that we minted.
   Whatever else the mail looks like, we wrote it, so we must not act on it.
2. **Machine-readable reports** - RFC 3464 delivery-status (by its ``Action``/``Status``
   fields: failed -> bounce, delayed -> delay warning, delivered/relayed/expanded -> success
   DSN), RFC 5965 ARF feedback reports, RFC 8098 read receipts, and the few structured
   provider formats (Amazon SES notifications, Microsoft JMRP complaints, Apple Mail
   unsubscribe requests). These carry their own verdict, so nothing below overrides them: a
   bounce sent with ``Precedence: bulk`` or ``Auto-Submitted: auto-replied`` (Postfix does
   both) is still a bounce.
3. **Non-standard bounces** - ``X-Failed-Recipients`` or a MAILER-DAEMON sender decide
   alone. Otherwise two hints are needed among: a null Return-Path, a postmaster / "Mail
   Delivery System" / list-manager sender, ``Auto-Submitted: auto-generated (failure)``, a
   bounce subject, a sentence only MTAs write (Exim, Postfix, qmail, Sendmail, Exchange,
   Yahoo, Gmail...), and a returned original (which only corroborates: people attach mails
   too). Words a person reporting a mail problem would also use ("user unknown", "mailbox
   full") only count next to a header-level hint, so "Subject: Mail delivery failed" written
   by a customer stays a ticket. Content is ignored altogether when a person forwards a
   bounce (``Fwd:``) or answers one of our messages (``In-Reply-To`` names our Message-ID)
   and no header says otherwise: that person wants help. A delay phrase without a permanent
   one makes the verdict a delay warning.
4. **Auto-replies** - RFC 3834 ``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: auto_reply``, or a vacation subject prefix in one of
   several languages (``Automatic reply:``, ``Abwesenheitsnotiz:``...). Vacation programs
   often add ``Precedence: bulk``; the auto-reply verdict is the more precise one.
5. **Bulk and list mail** - ``Precedence: bulk/list/junk``, ``List-Id``,
   ``List-Unsubscribe``, ``List-Post``, ``X-Mailing-List``. What happens to it is a policy
   of the intake; it never triggers an auto-reply.
6. Otherwise **normal**.

A null Return-Path on its own (RFC 5321 uses it for bounces, receipts and auto-responders)
never lets a mail through as normal: it becomes an auto-reply when other auto-reply hints
exist, else a bounce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .parse import ParsedMail

__all__ = ["MailKind", "ScreenResult", "screen_mail"]


class MailKind(StrEnum):
    """What an inbound mail is."""

    NORMAL = "normal"
    BOUNCE = "bounce"
    BOUNCE_DELAYED = "bounce-delayed"
    AUTO_REPLY = "auto-reply"
    FEEDBACK_REPORT = "feedback-report"
    DSN_DELIVERED = "dsn-delivered"
    READ_RECEIPT = "read-receipt"
    BULK = "bulk-or-list"
    LOOP = "loop"


@dataclass(frozen=True, slots=True)
class ScreenResult:
    """The verdict on one mail, with what intake needs to record it."""

    kind: MailKind
    reason: str
    original_message_ids: list[str]
    failed_recipients: list[str]
    temporary: bool = False

    @property
    def creates_ticket(self) -> bool:
        """Only mail written by a person (``NORMAL``) opens or continues a ticket."""
        return self.kind is MailKind.NORMAL


# --------------------------------------------------------------------------------------------
# Signals

_DAEMON_LOCAL = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon)$", re.IGNORECASE)
_DAEMON_TEXT = re.compile(r"\bmailer[-_ ]?daemon\b", re.IGNORECASE)
_POSTMASTER_LOCAL = re.compile(
    r"^(?:postmaster|mail\.?delivery\.?system|mailadmin|mail-?router|smtp-?gateway)$",
    re.IGNORECASE,
)
# Display names MTAs give their bounces. Not "System Administrator": people use it too.
_SYSTEM_NAME = re.compile(
    r"mail delivery (?:sub)?system|mail administrator|internet mail delivery|postmaster",
    re.IGNORECASE,
)
# Mailing-list managers send their errors from list-admin addresses.
_LIST_ADMIN_LOCAL = re.compile(r"-(?:admin|owner|bounces?|request)$", re.IGNORECASE)
_LIST_MANAGER_HEADERS = ("x-mlserver", "x-ml-name", "x-mailman-version", "x-list-administrivia")

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|return(?:ed|ing) (?:to sender|message)"
    r"|delivery (?:status )?notification|delivery (?:has )?failed|delivery failure|mail delivery"
    r"|failure notice|non[- ]?deliver|not (?:be )?delivered|could not (?:be )?(?:send|sent|deliver)"
    r"|mail system error|delivery problem|delivery report|failed mail|mail failure"
    r"|unzustellbar|nicht zugestellt|non remis|non recapitabile|no se (?:pudo|puede) entregar"
    r"|onbestelbaar|n[ãa]o entregue|не доставлено|未送達|配信エラー|配送エラー|退信"
    r"|user unknown|delivery error|processing error|returned to sender|message delayed"
    r"|delayed mail|warning: could not send|nondeliverable|undeliverable"
    r"|loop alert|duplicated message-id",
    re.IGNORECASE,
)

# Sentences MTAs write in the human-readable part of their bounces, and people do not.
_BOUNCE_SIGNATURE = re.compile(
    r"this is the mail system at host|this is the qmail-send program"
    r"|this is the postfix program|i'm afraid i wasn't able to deliver"
    r"|i'm sorry to have to inform you that (?:your|the) message"
    r"|this message was created automatically by mail delivery software"
    r"|delivery to the following recipients? (?:failed|has been delayed)"
    r"|delivery has failed to these recipients|your message (?:could not|cannot) be delivered"
    r"|your message did not reach some or all of the intended recipients"
    r"|following addresses had (?:permanent fatal|delivery) errors"
    r"|the original message was received at|sorry, we were unable to deliver your message"
    r"|delivery attempts will continue to be made|automatically generated delivery status"
    r"|failed permanently|transcript of (?:the )?session follows|could not be delivered to:"
    r"|smtp error from remote|remote server replied|message delayed|mail system error"
    r"|-+ ?non-delivery report ?-+"
    r"|\b55[0-4][ -]#?5\.\d\.\d{1,3}\b|\b4[25]\d[ -]#?4\.\d\.\d{1,3}\b",
    re.IGNORECASE,
)
# Words a bounce uses but a person reporting a mail problem might too: they only count
# next to a header-level hint (null Return-Path, postmaster sender, Auto-Submitted failure).
_BOUNCE_WORDS = re.compile(
    r"could not be delivered|unable to deliver|permanent (?:error|failure)|address rejected"
    r"|user unknown|unknown user|no such user|mailbox unavailable|mailbox (?:is )?full"
    r"|quota exceeded|over quota|does not exist|recipient rejected|host not found"
    r"|domain name not found|delivery failed|undeliverable|returned mail|was not delivered"
    r"|could not deliver|message not delivered|non-delivery|not be delivered",
    re.IGNORECASE,
)

_DELAY = re.compile(
    r"will continue (?:to be made|trying|to try|attempting)|will (?:keep|continue) (?:re)?trying"
    r"|still being retried|warning message only|do not need to resend|not yet been delivered"
    r"|has been delayed|delivery (?:is )?delayed|message delayed|delayed mail"
    r"|could not send message for past|notification \(delay\)|will retry",
    re.IGNORECASE,
)

# Subject prefixes of vacation and auto-responders. Only prefixes that end in a colon and
# that a person would not use for a request of their own ("Absent:", "Auto:" and "Away:"
# are left out on purpose: an HR or insurance helpdesk receives those from people).
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:"
    r"out of (?:the )?office|ooo|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse"
    r"|automated (?:reply|response)|automatische antwort|abwesenheitsnotiz"
    r"|r[ée]ponse automatique|respuesta autom[áa]tica|fuera de (?:la )?oficina"
    r"|risposta automatica|automatisch antwoord|resposta autom[áa]tica|autosvar"
    r"|automatisk svar|automaattinen vastaus|odpowied[źz] automatyczna"
    r"|vacation (?:reply|auto-?reply|response|notice)"
    r"|自動応答|自動返信|自动回复|자동 ?응답|автоответ|автоматический ответ"
    r")\s*[:\uff1a]",  # ASCII or full-width colon
    re.IGNORECASE,
)
# Whole subjects that are vacation notices even without a colon.
_AUTO_SUBJECT_WHOLE = re.compile(
    r"^\s*(?:out of (?:the )?office(?: reply| notice| autoreply)?|automatic reply|auto[- ]?reply"
    r"|abwesenheitsnotiz|r[ée]ponse automatique|vacation (?:reply|notice))\s*$",
    re.IGNORECASE,
)
# Forward prefixes in several languages: "Fwd: Undelivered Mail" is a person asking for help.
_FORWARD_PREFIX = re.compile(
    r"^\s*(?:fwd?|fw|wg|tr|rv|enc|doorst|vs|i)\s*(?:\[\d+\])?\s*:", re.IGNORECASE
)
_BULK_PRECEDENCE = {"bulk", "list", "junk"}
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "x-mailing-list", "mailing-list")
_SES_TYPE = re.compile(r'"notificationType"\s*:\s*"(Bounce|Complaint|Delivery)"')
_SES_BOUNCE_TYPE = re.compile(r'"bounceType"\s*:\s*"(\w+)"')
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# Where bounces start quoting the returned message.
_ORIGINAL_MARKER = re.compile(
    r"^.*(?:original message|copy of the (?:original )?message|message (?:headers )?follows"
    r"|below this line|returned message|undelivered message|original-message|^received:).*$",
    re.IGNORECASE | re.MULTILINE,
)
_ROUTE_PREFIX = re.compile(r"^(?:smtp|rfc822)[=:;]", re.IGNORECASE)
_HEADER_LINE = re.compile(
    r"^\s*(?:from|sender|reply-to|return-path|message-id|references|in-reply-to|cc|date)\s*:",
    re.IGNORECASE,
)


def _local_part(address: str | None) -> str:
    return address.rpartition("@")[0] if address else ""


def _first_token(value: str) -> str:
    return value.strip().split(";", 1)[0].split(None, 1)[0].lower() if value.strip() else ""


@dataclass(slots=True)
class _Facts:
    """Signals computed once per mail and shared by the checks below."""

    headers: dict[str, str]
    subject: str
    null_return_path: bool
    daemon_sender: bool
    system_sender: bool
    forwarded: bool
    replies_to_us: bool


def _facts(mail: ParsedMail, is_own_message_id: Callable[[str], bool]) -> _Facts:
    headers = mail.headers
    local = _local_part(mail.sender_email)
    return_path = headers.get("return-path")
    null_return_path = return_path is not None and return_path.strip().strip("<>").strip() == ""
    daemon = bool(_DAEMON_LOCAL.match(local)) or bool(_DAEMON_TEXT.search(headers.get("from", "")))
    system = (
        bool(_POSTMASTER_LOCAL.match(local))
        or bool(_SYSTEM_NAME.search(mail.sender_name or ""))
        or (
            bool(_LIST_ADMIN_LOCAL.search(local))
            and any(name in headers for name in _LIST_MANAGER_HEADERS)
        )
    )
    return _Facts(
        headers=headers,
        subject=mail.subject,
        null_return_path=null_return_path,
        daemon_sender=daemon,
        system_sender=system,
        forwarded=bool(_FORWARD_PREFIX.match(mail.subject)),
        replies_to_us=any(
            _safe(is_own_message_id, i) for i in (*mail.in_reply_to, *mail.references)
        ),
    )


def _safe(check: Callable[[str], bool], message_id: str) -> bool:
    try:
        return bool(check(message_id))
    except Exception:  # a faulty callback must not stop intake
        return False


def _originals(mail: ParsedMail) -> list[str]:
    ids = [*mail.embedded_message_ids, *mail.in_reply_to, *mail.references]
    return list(dict.fromkeys(ids))


def _recipient(value: str | None) -> str | None:
    """``rfc822; <User@Example.org>`` -> ``user@example.org``."""
    if not value:
        return None
    found = _ADDRESS.search(value.rpartition(";")[2] or value)
    return found.group(0).lower().strip(".") if found else None


def _result(
    kind: MailKind, reason: str, mail: ParsedMail, failed: list[str] | None = None
) -> ScreenResult:
    temporary = kind is MailKind.BOUNCE_DELAYED
    originals = [] if kind in (MailKind.NORMAL, MailKind.BULK) else _originals(mail)
    return ScreenResult(kind, reason, originals, list(dict.fromkeys(failed or [])), temporary)


# --------------------------------------------------------------------------------------------
# Checks, in the order of the module docstring


def _loop(
    mail: ParsedMail, is_own_message_id: Callable[[str], bool], loop_tokens: frozenset[str]
) -> str | None:
    tokens = {t.strip().lower() for t in loop_tokens}
    values = mail.loop_headers or ([mail.headers["x-loop"]] if "x-loop" in mail.headers else [])
    for value in values:
        if value.strip().lower() in tokens:
            return f"X-Loop: {value.strip()}"
    if mail.message_id and _safe(is_own_message_id, mail.message_id):
        return f"our own Message-ID came back: {mail.message_id}"
    return None


def _delivery_status(mail: ParsedMail) -> ScreenResult | None:
    groups = mail.delivery_status
    is_dsn = mail.report_type in ("delivery-status", "delivery-status-global") or any(
        "delivery-status" in part for part in mail.report_parts
    )
    if not groups and not is_dsn:
        return None
    failed: list[str] = []
    delayed: list[str] = []
    delivered: list[str] = []
    statuses: list[str] = []
    for group in groups:
        action = _first_token(group.get("action", ""))
        status = _first_token(group.get("status", ""))
        # Original-Recipient is the address we wrote to; Final-Recipient may be rewritten.
        recipient = _recipient(group.get("original-recipient") or group.get("final-recipient"))
        if status:
            statuses.append(status)
        if action.startswith("fail") or (not action and status.startswith("5")):
            failed.append(recipient or "")
        elif action.startswith("delay") or (not action and status.startswith("4")):
            delayed.append(recipient or "")
        elif action in ("delivered", "relayed", "expanded", "deliverable") or (
            not action and status.startswith("2")
        ):
            delivered.append(recipient or "")
    status_text = ", ".join(dict.fromkeys(statuses)) or "no status"
    extra = [a for a in _header_failed(mail) if a]
    if failed:
        reason = f"delivery-status: {status_text} failed"
        return _result(MailKind.BOUNCE, reason, mail, [a for a in failed if a] + extra)
    if delayed:
        reason = f"delivery-status: {status_text} delayed"
        return _result(MailKind.BOUNCE_DELAYED, reason, mail, [a for a in delayed if a] + extra)
    if delivered:
        return _result(MailKind.DSN_DELIVERED, f"delivery-status: {status_text} delivered", mail)
    # A DSN that says nothing usable (Gmail sends empty ones): judge by its human part.
    extra = extra or _body_failed(mail)
    if _delay_hint(mail):
        return _result(MailKind.BOUNCE_DELAYED, "delivery-status report, delay", mail, extra)
    return _result(MailKind.BOUNCE, "delivery-status report without action", mail, extra)


def _other_reports(mail: ParsedMail) -> ScreenResult | None:
    report = mail.report_type or ""
    if report == "feedback-report" or "message/feedback-report" in mail.report_parts:
        kind = mail.report_fields.get("feedback-type", "abuse")
        return _result(MailKind.FEEDBACK_REPORT, f"feedback-report: {kind}", mail)
    if report.startswith("disposition-notification") or any(
        "disposition-notification" in part for part in mail.report_parts
    ):
        disposition = mail.report_fields.get("disposition", "")
        return _result(
            MailKind.READ_RECEIPT, f"disposition-notification {disposition}".strip(), mail
        )
    headers = mail.headers
    # Microsoft JMRP complaints: the returned message carries the reporter's marker header.
    if "x-hmxmroriginalrecipient" in mail.embedded_headers:
        return _result(MailKind.FEEDBACK_REPORT, "Microsoft JMRP complaint", mail)
    # Apple Mail's one-click unsubscribe: a list-unsubscribe request, not a message.
    if headers.get("x-apple-unsubscribe", "").strip().lower() == "true":
        return _result(MailKind.FEEDBACK_REPORT, "X-Apple-Unsubscribe request", mail)
    # Amazon SES notifications forwarded by SNS carry a JSON document.
    if "x-amz-sns-message-id" in headers or (mail.sender_email or "").endswith("amazonaws.com"):
        found = _SES_TYPE.search(mail.text[:65536])
        if found:
            kind_name = found.group(1)
            if kind_name == "Complaint":
                return _result(MailKind.FEEDBACK_REPORT, "Amazon SES complaint", mail)
            if kind_name == "Delivery":
                return _result(MailKind.DSN_DELIVERED, "Amazon SES delivery", mail)
            bounce_type = _SES_BOUNCE_TYPE.search(mail.text[:65536])
            if bounce_type and bounce_type.group(1) == "Transient":
                return _result(MailKind.BOUNCE_DELAYED, "Amazon SES transient bounce", mail)
            return _result(MailKind.BOUNCE, "Amazon SES bounce", mail, _body_failed(mail))
    return None


def _header_failed(mail: ParsedMail) -> list[str]:
    value = mail.headers.get("x-failed-recipients", "")
    return [a.lower() for a in _ADDRESS.findall(value)]


def _body_failed(mail: ParsedMail) -> list[str]:
    """Addresses a non-standard bounce names before the returned original (best effort)."""
    text = mail.text[:20000]
    marker = _ORIGINAL_MARKER.search(text)
    if marker:
        text = text[: marker.start()]
    original_from = _ADDRESS.findall(mail.embedded_headers.get("from", ""))
    ours = {*mail.to, *mail.cc, *mail.delivered_to, mail.sender_email or ""}
    ours.update(a.lower() for a in original_from)
    found: list[str] = []
    for line in text.splitlines():
        if _HEADER_LINE.match(line):  # quoted headers of the original, not recipients
            continue
        for address in _ADDRESS.findall(line):
            # "dda:SMTP=user@example.com" (X.400 gateways): keep the address itself.
            address = _ROUTE_PREFIX.sub("", address.lower().strip("."))
            local = address.partition("@")[0]
            if address in ours or _DAEMON_LOCAL.match(local) or _POSTMASTER_LOCAL.match(local):
                continue
            found.append(address)
        if len(found) >= 20:
            break
    return list(dict.fromkeys(found))


def _delay_hint(mail: ParsedMail) -> bool:
    return bool(_DELAY.search(mail.subject) or _DELAY.search(mail.text[:8000]))


def _bounce(mail: ParsedMail, facts: _Facts) -> ScreenResult | None:
    header_failed = _header_failed(mail)
    strong: str | None = None
    if header_failed or "x-failed-recipients" in facts.headers:
        strong = "X-Failed-Recipients"
    elif facts.daemon_sender:
        strong = "MAILER-DAEMON sender"
    auto = facts.headers.get("auto-submitted", "").strip().lower()
    header_hints: list[str] = []
    if facts.null_return_path:
        header_hints.append("null Return-Path")
    if facts.system_sender:
        header_hints.append("postmaster sender")
    if auto.startswith("auto-generated") and ("failure" in auto or "warning" in auto):
        header_hints.append(f"Auto-Submitted: {auto}")
    content_hints: list[str] = []
    # What a mail quotes is only trusted when nothing says a person wrote it: a person
    # forwarding a bounce, or answering one of our messages, wants help.
    person = (facts.forwarded or facts.replies_to_us) and not (strong or header_hints)
    if not person:
        if _BOUNCE_SUBJECT.search(facts.subject):
            content_hints.append("bounce subject")
        head = mail.text[:20000]
        if _BOUNCE_SIGNATURE.search(head) or (header_hints and _BOUNCE_WORDS.search(head)):
            content_hints.append("bounce text")
        # A returned original only corroborates: people attach messages too.
        if mail.embedded_headers and (content_hints or facts.null_return_path):
            content_hints.append("returned original")
    hints = header_hints + content_hints
    if strong is None and len(hints) < 2:
        return None
    reason = ", ".join([strong, *hints] if strong else hints)
    failed = header_failed + _body_failed(mail)
    if _delay_hint(mail) and not _permanent_hint(mail):
        return _result(MailKind.BOUNCE_DELAYED, f"delay warning: {reason}", mail, failed)
    return _result(MailKind.BOUNCE, reason, mail, failed)


_PERMANENT = re.compile(
    r"permanent(?:ly)? (?:error|failure|fatal)|failed permanently|user unknown|no such user"
    r"|will not be retried|giving up|gave up|i'm not going to try again",
    re.IGNORECASE,
)


def _permanent_hint(mail: ParsedMail) -> bool:
    return bool(_PERMANENT.search(mail.text[:8000]))


def _auto_reply(mail: ParsedMail, facts: _Facts) -> str | None:
    headers = facts.headers
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and _first_token(auto) != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated"):
        value = headers.get(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name}: {value.strip()[:40]}"
    if headers.get("precedence", "").strip().lower() in ("auto_reply", "auto-reply"):
        return "Precedence: auto_reply"
    if _AUTO_SUBJECT.match(facts.subject) or _AUTO_SUBJECT_WHOLE.match(facts.subject):
        return f"auto-reply subject: {facts.subject[:60]}"
    suppress = "x-auto-response-suppress" in headers
    generated = "x-ms-exchange-generated-message-source" in headers
    if (suppress or generated) and facts.null_return_path:
        return "Exchange auto-response (null Return-Path)"
    return None


def _bulk(mail: ParsedMail) -> str | None:
    headers = mail.headers
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if name in headers:
            return f"{name}: {headers[name][:60]}"
    return None


def screen_mail(
    mail: ParsedMail,
    *,
    is_own_message_id: Callable[[str], bool] = lambda _id: False,
    loop_tokens: frozenset[str] = frozenset(),
) -> ScreenResult:
    """Classify one parsed mail (see the module docstring for the order of the signals)."""
    loop = _loop(mail, is_own_message_id, loop_tokens)
    if loop:
        return ScreenResult(MailKind.LOOP, loop, _originals(mail), [])
    verdict = _delivery_status(mail) or _other_reports(mail)
    if verdict:
        return verdict
    facts = _facts(mail, is_own_message_id)
    verdict = _bounce(mail, facts)
    if verdict:
        return verdict
    auto = _auto_reply(mail, facts)
    if auto:
        return _result(MailKind.AUTO_REPLY, auto, mail)
    if facts.null_return_path:
        return _result(MailKind.BOUNCE, "null Return-Path (bounce or other automatic mail)", mail)
    bulk = _bulk(mail)
    if bulk:
        return _result(MailKind.BULK, bulk, mail)
    return _result(MailKind.NORMAL, "no automatic-mail signal", mail)
