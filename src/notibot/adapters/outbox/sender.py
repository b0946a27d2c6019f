"""The embedded default EmailSender: every message becomes an ``.eml`` file in a folder."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from notibot.adapters.outbox.mime import domain_of, render_email
from notibot.application.ports import EmailMessage, EmailSender
from notibot.domain import DeliveryFailed

#: Characters kept from a Message-ID in a file name; any other run becomes one "-".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest Message-ID slug in a file name (characters).
_SLUG_MAX = 100


def eml_file_name(message_id: str, when: datetime) -> str:
    """``<timestamp>-<message id slug>.eml``: UTC time to the microsecond
    (``20260101T090000.123456Z``), so names sort in sending order, then the Message-ID with
    anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``."""
    slug = _UNSAFE.sub("-", message_id.strip("<>")).strip("-.")[:_SLUG_MAX] or "message"
    return f"{when.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{slug}.eml"


class OutboxEmailSender(EmailSender):
    """Writes each message as an RFC 5322 file (``.eml``, CRLF line ends; mail clients open it)
    into ``folder``: the embedded default, and a fake that tests read back.

    The bytes are exactly what :class:`~notibot.adapters.smtp.SmtpEmailSender` would send
    (both use :func:`~notibot.adapters.outbox.mime.render_email`). Each file is written to a
    temporary name in the folder and renamed into place, so a reader never sees half a
    message. Safe to share between threads and event loops. The folder is created on the
    first send; building the sender touches nothing.

    Parameters:
        folder: where the files go (NOTIBOT_OUTBOX_DIR).
        from_address: the From of messages that set none (NOTIBOT_EMAIL_FROM).
        hostname: the domain of generated Message-IDs; the domain of ``from_address`` when
            None.
    """

    def __init__(self, folder: str | os.PathLike[str], from_address: str, *,
                 hostname: str | None = None) -> None:
        self.folder = Path(folder)
        self.from_address = from_address
        self.hostname = hostname or domain_of(from_address)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OutboxEmailSender({str(self.folder)!r})"

    async def send(self, message: EmailMessage) -> str:
        """Write ``message`` to a new file; return its Message-ID.

        Raises:
            DeliveryFailed: ``transient=False`` (``invalid_email_message``) when the message
                cannot be built; ``transient=True`` (``outbox_unavailable``) when the file
                cannot be written (disk full, no permission).
        """
        now = datetime.now(UTC)
        rendered = render_email(message, default_from=self.from_address,
                                message_id_domain=self.hostname, now=now)
        try:
            await asyncio.to_thread(self._write, rendered.data,
                                    eml_file_name(rendered.message_id, now))
        except OSError as exc:
            raise DeliveryFailed(f"the outbox {self.folder} cannot be written: {exc}",
                                 transient=True, code="outbox_unavailable",
                                 details={"folder": str(self.folder)}) from exc
        return rendered.message_id

    def _write(self, data: bytes, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{uuid.uuid4().hex}.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
            with self._lock:  # pick a free name and take it in one step
                target = self.folder / name
                counter = 1
                while target.exists():
                    target = self.folder / f"{name[:-4]}-{counter}.eml"
                    counter += 1
                os.replace(temporary, target)
        finally:
            if temporary.exists():
                temporary.unlink()
        return target

    async def close(self) -> None:
        """Nothing to release."""

    def files(self) -> list[Path]:
        """The ``.eml`` files written so far, oldest first (for tests and tools)."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.eml"))
