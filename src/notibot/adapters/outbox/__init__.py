"""The outbox EmailSender (``.eml`` files in a folder, the embedded default) and the one
message builder that the SMTP adapter shares with it. Standard library only."""

from notibot.adapters.outbox.mime import RenderedEmail, domain_of, render_email
from notibot.adapters.outbox.sender import OutboxEmailSender, eml_file_name

__all__ = ["OutboxEmailSender", "RenderedEmail", "domain_of", "eml_file_name", "render_email"]
