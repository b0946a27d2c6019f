"""The SMTP EmailSender (aiosmtplib, pooled connections), its readiness check and the
translation of SMTP errors into the domain's transient or permanent
:class:`~notibot.domain.DeliveryFailed`."""

from notibot.adapters.smtp.errors import is_transient_code, translate_smtp_error
from notibot.adapters.smtp.health import SmtpHealthCheck
from notibot.adapters.smtp.sender import DEFAULT_PORTS, TLS_MODES, SmtpEmailSender

__all__ = [
    "DEFAULT_PORTS", "TLS_MODES", "SmtpEmailSender", "SmtpHealthCheck", "is_transient_code",
    "translate_smtp_error",
]
