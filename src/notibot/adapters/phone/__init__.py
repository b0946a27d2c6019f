"""Phone numbers to E.164 with the phonenumbers library (Google libphonenumber metadata)."""

from notibot.adapters.phone.parser import PhonenumbersParser, to_e164

__all__ = ["PhonenumbersParser", "to_e164"]
