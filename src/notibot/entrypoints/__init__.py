"""Ways into notibot from the outside: the HTTP API (``http``), the command line (``cli``).

Entrypoints build a container (``notibot.container``) and call the application services; they
hold no business rules. Importing them does no I/O.
"""
