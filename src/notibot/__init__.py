"""notibot: customer notifications and AI chat, as a hexagonal Python library.

Embedding API::

    from notibot import Notibot, Settings

    app = Notibot.from_settings(Settings())
    await app.start()
    page = await app.customers.list(CustomerFilter())
    await app.stop()

``notibot.testing`` builds an all-in-memory instance for your own tests.
"""

from notibot.application.ports import CustomerFilter, JobFilter, Page
from notibot.container import Container, Notibot, build_container
from notibot.settings import Settings

__all__ = ["Container", "CustomerFilter", "JobFilter", "Notibot", "Page", "Settings",
           "build_container"]
__version__ = "0.1.0"
