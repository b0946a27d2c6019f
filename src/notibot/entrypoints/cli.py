"""The ``notibot`` command line: serve the HTTP API, import customers, manage users, export
the OpenAPI document.

Every command builds what it needs when it runs; importing this module does no I/O. The HTTP
layer (``notibot.entrypoints.http``) and rich are imported lazily by the commands that use
them.

Exit codes: 0 success, 1 the operation was refused or failed (weak password, username taken,
a file that cannot be imported, a failed import job, ...), 2 bad usage, a bad option value or
an invalid setting (one line per error, naming the NOTIBOT_ variable).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from notibot import __version__
from notibot.application.services.imports import ImportMode

#: Exit code of a refused operation (weak password, username taken, bad role).
EXIT_REFUSED = 1
#: Exit code of an invalid setting or option value (same as a usage error).
EXIT_BAD_SETTING = 2

app = typer.Typer(
    name="notibot",
    help="notibot: customer notifications and AI chat. Settings come from NOTIBOT_* "
    "environment variables or a .env file in the working directory.",
    no_args_is_help=True,
    add_completion=False,
    # Never print local variables in tracebacks: they may hold passwords and secrets.
    pretty_exceptions_show_locals=False,
)
users_app = typer.Typer(help="Manage API users (admins and operators).", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"notibot: error: {message}", err=True)
    raise typer.Exit(code)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"notibot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """notibot: customer notifications and AI chat."""


def setting_errors(error: Exception, cli_names: dict[str, str] | None = None) -> list[str]:
    """Turn a pydantic ``ValidationError`` of :class:`~notibot.settings.Settings` into one
    line per error that names the environment variable (``NOTIBOT_PORT``) and, when the value
    came from a command-line option, the option too.

    Parameters:
        error: the ``pydantic.ValidationError`` raised while building the settings.
        cli_names: field name -> option name (``{"port": "--port"}``) for the values that were
            given on the command line.

    Returns:
        Lines such as ``NOTIBOT_PORT: Input should be greater than or equal to 1 (got '0')``.
    """
    cli_names = cli_names or {}
    lines = []
    for item in error.errors():  # type: ignore[attr-defined]
        message = item["msg"].removeprefix("Value error, ")
        loc = item.get("loc") or ()
        if not loc:  # a rule over several settings: its message names them already
            lines.append(message)
            continue
        field = str(loc[0])
        name = f"NOTIBOT_{field.upper()}"
        if field in cli_names:
            name = f"{cli_names[field]} ({name})"
        secret = "secret" in field or "password" in field
        value = item.get("input")
        shown = "" if secret or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{name}: {message}{shown}")
    return lines


def load_settings(cli_names: dict[str, str] | None = None, **values: Any) -> Any:
    """Read :class:`~notibot.settings.Settings` from the environment, with ``values`` (from
    command-line options) taking precedence. On invalid settings print one line per error to
    stderr and exit with code 2 instead of a traceback.

    Parameters:
        cli_names: field name -> option name, used in the error lines.
        values: field name -> value; None values are ignored (the option was not given).
    """
    from pydantic import ValidationError

    from notibot.settings import Settings

    given = {key: value for key, value in values.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        names = {key: name for key, name in (cli_names or {}).items() if key in given}
        typer.echo("notibot: invalid settings:", err=True)
        for line in setting_errors(error, names):
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(EXIT_BAD_SETTING) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(
        help="Bind address. Default: NOTIBOT_HOST or 127.0.0.1.", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(
        help="Port. Default: NOTIBOT_PORT or 8000.", show_default=False)] = None,
    log_level: Annotated[str | None, typer.Option(
        help="debug, info, warning or error. Default: NOTIBOT_LOG_LEVEL or info.",
        show_default=False)] = None,
) -> None:
    """Serve the HTTP API with uvicorn (docs at /docs, health at /health).

    On the embedded default (no configuration) an ``admin`` user with a random password is
    created at start-up and its password is printed once to stderr.
    """
    settings = load_settings({"host": "--host", "port": "--port", "log_level": "--log-level"},
                             host=host, port=port, log_level=log_level)
    import uvicorn

    from notibot.container import build_container
    from notibot.entrypoints.http import create_app

    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("notibot").setLevel(level)
    application = create_app(build_container(settings))
    config = uvicorn.Config(application, host=settings.host, port=settings.port,
                            log_level=settings.log_level, lifespan="on", proxy_headers=False)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # start-up failed (port in use, a resource could not start)
        raise typer.Exit(EXIT_REFUSED)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name (3-64 of letters, digits, _.@-).")],
    role: Annotated[str, typer.Option(help="admin or operator.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from stdin instead of prompting.")] = False,
) -> None:
    """Create a user in the configured store.

    The password is prompted twice (hidden), or read from the first line of stdin with
    --password-stdin, e.g. printf '%s' "$PASSWORD" | notibot users create --username ann
    --role admin --password-stdin
    """
    from notibot.domain.errors import NotibotError
    from notibot.domain.user import check_username, parse_role

    try:  # refuse a bad role or username before asking for a password
        parse_role(role)
        check_username(username)
    except NotibotError as error:
        _fail(f"{error.message} ({error.code})")
    settings = load_settings()
    if password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if settings.is_embedded_default:
        typer.echo("notibot: warning: the store is in memory (embedded default): this user "
                   "lives only in this process and is gone when the command exits. Use this "
                   "command with a persistent store (NOTIBOT_STORE); to get a first admin on "
                   "the embedded default set NOTIBOT_ADMIN_USERNAME and NOTIBOT_ADMIN_PASSWORD "
                   "for `notibot serve`.", err=True)
    try:
        user = asyncio.run(_create_user(settings, username, password, role))
    except NotibotError as error:
        _fail(f"{error.message} ({error.code})")
    typer.echo(f"created user id={user.id} username={user.username} role={user.role.value}")


async def _create_user(settings: Any, username: str, password: str, role: str) -> Any:
    import secrets

    from pydantic import SecretStr

    from notibot.container import Notibot

    if settings.jwt_secret is None:  # this command issues no token: any secret will do, and
        # it spares the "random secret for this process" warning meant for the server
        settings = settings.model_copy(
            update={"jwt_secret": SecretStr(secrets.token_urlsafe(48))})
    notibot = Notibot.from_settings(settings)
    # Start without the admin step (it would create the throw-away "admin" of the embedded
    # default) and without re-queueing jobs (that is the servers' business).
    await notibot.start(ensure_admin=False, run_jobs=False)
    try:
        return await notibot.auth.create_user(username, password, role)
    finally:
        await notibot.stop()


#: Seconds between two looks at a running import's counters.
IMPORT_POLL_SECONDS = 0.2
#: Codes of import errors about an option value (exit code 2), with the option's name.
_OPTION_ERRORS = {"invalid_mode": "--mode", "invalid_region": "--region",
                  "invalid_delimiter": "--delimiter"}


def default_errors_path(file: Path) -> Path:
    """Where ``notibot import FILE`` writes the rejected rows unless told: next to the file,
    ``<stem>.errors.csv`` (``customers.csv`` -> ``customers.errors.csv``)."""
    return file.with_name(f"{file.stem}.errors.csv")


@app.command("import")
def import_customers(
    file: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, readable=True, show_default=False,
        help="The customer CSV file (UTF-8, header line first).")],
    mode: Annotated[ImportMode, typer.Option(
        help="upsert: create new customers and update existing ones; skip: leave existing "
             "ones untouched; dry_run: write nothing, report what upsert would do.")
    ] = ImportMode.UPSERT,
    delimiter: Annotated[str | None, typer.Option(
        help="Column delimiter: , ; | or \\t for tab. Default: sniffed from the header.",
        show_default=False)] = None,
    region: Annotated[str | None, typer.Option(
        help="Region of phone numbers without a country code (ISO 3166-1, e.g. VN). "
             "Default: NOTIBOT_DEFAULT_REGION or VN.", show_default=False)] = None,
    errors_out: Annotated[Path | None, typer.Option(
        "--errors-out", dir_okay=False, show_default=False,
        help="Write the rejected rows to this CSV file. Default: <FILE stem>.errors.csv "
             "next to FILE.")] = None,
) -> None:
    """Import customers from a CSV file into the configured store, in this process.

    The same import as POST /customers/import (a csv_import job), with a
    progress bar on stderr and a summary on stdout: total rows, created,
    updated, skipped, failed and the duration. Rejected rows (invalid values,
    duplicates inside the file) are written as CSV (line, code, message, then
    the row's columns) to --errors-out, by default <FILE stem>.errors.csv next
    to FILE. NOTIBOT_MAX_UPLOAD_MB does not apply: the file is local.

    Exit code 0 when the import ran, even with rejected rows; 1 when the file
    was refused or the import failed; 2 for a bad option.
    """
    started = time.monotonic()
    target = errors_out if errors_out is not None else default_errors_path(file)
    if target.resolve() == file.resolve():
        _fail("--errors-out must not be the imported file", EXIT_BAD_SETTING)
    settings = load_settings()
    try:
        content = file.read_bytes()
    except OSError as error:
        _fail(f"cannot read {file}: {error.strerror or error}")
    try:
        asyncio.run(_import_file(settings, file, content, mode, delimiter, region, target,
                                 started))
    except KeyboardInterrupt:
        _fail("interrupted: the import stopped", 130)


async def _import_file(settings: Any, file: Path, content: bytes, mode: ImportMode,
                       delimiter: str | None, region: str | None, errors_out: Path,
                       started: float) -> None:
    from rich.console import Console

    from notibot.container import Notibot
    from notibot.domain.errors import NotibotError

    # The import runs in this process whatever NOTIBOT_QUEUE says (it is local and the
    # command follows it to the end); the store is the configured one.
    settings = settings.model_copy(update={"queue": "inline"})
    notibot = Notibot.from_settings(settings)
    await notibot.start(ensure_admin=False, run_jobs=False)
    try:
        imports = notibot.imports
        imports.max_upload_bytes = max(imports.max_upload_bytes, len(content))  # local file
        try:
            job = await imports.submit(content, filename=file.name, mode=mode.value,
                                       delimiter=delimiter, default_region=region,
                                       content_type="text/csv")
        except NotibotError as error:
            option = _OPTION_ERRORS.get(error.code)
            if option is not None:
                _fail(f"{option}: {error.message} ({error.code})", EXIT_BAD_SETTING)
            _fail(f"{file}: {error.message} ({error.code})")
        job = await _follow(notibot, job.id, file.name, Console(stderr=True))
        elapsed = time.monotonic() - started
        if job.status.value != "succeeded":
            reason = job.failure_reason or job.status.value
            _fail(f"the import of {file} {job.status.value}: {reason}")
        _print_summary(job, file, elapsed)
        if job.error_count:
            await _write_rejected(imports, job.id, errors_out)
            typer.echo(f"{job.error_count:,} rejected rows written to {errors_out}")
        else:
            typer.echo("no rows were rejected")
    finally:
        await notibot.stop()


async def _follow(notibot: Any, job_id: str, name: str, console: Any) -> Any:
    """Poll the job every :data:`IMPORT_POLL_SECONDS` until it finished, driving a progress
    bar from its counters; returns the finished job."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("rows"), TaskProgressColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"importing {escape(name)}", total=None)
        while True:
            job = await notibot.jobs.get(job_id)
            progress.update(task, total=job.total,
                            completed=job.counters.get("processed", 0))
            if job.is_finished:
                return job
            await asyncio.sleep(IMPORT_POLL_SECONDS)


def _print_summary(job: Any, file: Path, elapsed: float) -> None:
    counters = job.counters
    rows = job.total if job.total is not None else counters.get("total_rows", 0)
    dry_run = job.params.get("mode") == ImportMode.DRY_RUN.value
    title = (f"dry run of {file.name}: nothing was written; the counts are what an upsert "
             f"would do" if dry_run else f"imported {file.name} (mode {job.params.get('mode')})")
    typer.echo(title)
    lines = [("total rows", rows)] + [(name, counters.get(name, 0)) for name in
                                      ("created", "updated", "skipped", "failed")]
    width = max(len(f"{value:,}") for _, value in lines)
    for label, value in lines:
        typer.echo(f"  {label:<11}{value:>{width},}")
    typer.echo(f"  {'duration':<11}{elapsed:.2f} s")


async def _write_rejected(imports: Any, job_id: str, path: Path) -> None:
    """Write the rejected rows of the import as CSV to ``path`` (exit 1 when it cannot)."""
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            async for piece in imports.rejected_rows_csv(job_id):
                out.write(piece)
    except OSError as error:
        _fail(f"cannot write the rejected rows to {path}: {error.strerror or error}; "
              "choose another file with --errors-out")


@app.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    threads: Annotated[int, typer.Option(
        min=1, help="Threads per process: jobs running at once in each.")] = 8,
    queues: Annotated[list[str] | None, typer.Option(
        "--queues", "-Q", show_default=False,
        help="Consume only these queues (repeat the option). Default: all of notibot's.")
    ] = None,
) -> None:
    """Run Dramatiq workers that execute notibot's jobs (imports, campaign sends, chat).

    Needs NOTIBOT_QUEUE=dramatiq, a broker (NOTIBOT_BROKER_URL or NOTIBOT_REDIS_URL) and a
    shared store (NOTIBOT_STORE=mongo); each process builds its own container and its own
    event-loop-bound clients. Scale out by running more of them, on any machine that
    reaches the broker and the database. SIGINT/SIGTERM stop them gracefully.

    Exit code 2 for bad settings; otherwise Dramatiq's exit code.
    """
    from pydantic import ValidationError

    from notibot.entrypoints.worker import run_worker

    load_settings()  # one line per bad setting, exit 2
    try:
        code = run_worker(processes, threads, queues)
    except (ValueError, ValidationError) as error:
        _fail(str(error), EXIT_BAD_SETTING)
    raise typer.Exit(code)


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the document to this file instead of stdout.",
        dir_okay=False, writable=True)] = None,
) -> None:
    """Print the OpenAPI document of the HTTP API as JSON."""
    from notibot.entrypoints.http import openapi_spec

    text = json.dumps(openapi_spec(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"notibot {__version__}")


def main() -> None:
    """Run the ``notibot`` command line (the console script's entry point)."""
    app(prog_name="notibot")
