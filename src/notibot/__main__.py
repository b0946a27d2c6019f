"""``python -m notibot``: the same command line as the ``notibot`` console script."""

from notibot.entrypoints.cli import main

if __name__ == "__main__":
    main()
