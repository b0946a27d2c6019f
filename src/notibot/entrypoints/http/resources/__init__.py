"""Falcon resources, one module per area. Each resource receives the services it uses in its
constructor and declares who may call it in its ``access`` class attribute
(:mod:`notibot.entrypoints.http.middleware`)."""
