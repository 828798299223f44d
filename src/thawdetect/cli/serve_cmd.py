"""``thawdetect review serve``: review a run in the browser (a local web workspace)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

import click

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: A shorter --token is refused (the random default is 32 characters).
MIN_TOKEN_LENGTH = 16


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@click.command("serve")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default="a free port",
    help="TCP port (0-65535).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but 127.0.0.1/localhost exposes the run (warned).",
)
@click.option(
    "-r",
    "--reviewer",
    envvar="THAWDETECT_REVIEWER",
    default="unknown",
    show_default=True,
    help="Your name, recorded with every decision (or THAWDETECT_REVIEWER).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option("--read-only", is_flag=True, help="Look only: refuse every decision.")
@click.option(
    "--token",
    envvar="THAWDETECT_REVIEW_TOKEN",
    default="",
    help="Access token (default: a new random one; or THAWDETECT_REVIEW_TOKEN).",
)
def serve(
    run_dir: Path,
    port: int,
    host: str,
    reviewer: str,
    open_browser: bool,
    read_only: bool,
    token: str,
) -> None:
    """Review RUN_DIR in the browser: queue, map of the run's layers, evidence, keyboard decisions.

    Prints the URL to open (it carries the access token). Decisions are written to the ledger at
    once, exactly as 'thawdetect review decide' writes them.

    \b
    Keys: y confirm, n reject, u unsure, 1/2/3 probability, p part of the selected inventory
    feature, e edit the outline, j/k next/previous, z undo, Enter note.

    \b
    Examples:
      thawdetect review serve runs/qilian --reviewer ann
      thawdetect review serve runs/qilian --read-only --port 8765
    """
    try:
        import uvicorn
    except ImportError as exc:
        from thawdetect.core.errors import MissingDependencyError

        raise MissingDependencyError("uvicorn", "web", "the review server") from exc
    from thawdetect.core.run.access import open_run_ledger
    from thawdetect.web.app import ServerConfig, create_app

    open_run_ledger(run_dir)  # not a run, or a damaged ledger: one line before serving anything

    if token and len(token) < MIN_TOKEN_LENGTH:
        from thawdetect.core.errors import InputError

        raise InputError(
            None,
            f"--token must be at least {MIN_TOKEN_LENGTH} characters (a guessable token opens "
            "the run to anyone who can reach the port); leave it out for a random one",
        )
    token = token or secrets.token_urlsafe(24)
    allowed = {"127.0.0.1", "localhost", "::1"}
    if host not in LOCAL_HOSTS:
        click.echo(
            f"warning: binding {host}: anyone who can reach this address and has the token can "
            "read this run" + ("" if read_only else " and record decisions"),
            err=True,
        )
        allowed.add(host)
        if host in ("0.0.0.0", "::"):
            allowed |= {socket.gethostname(), socket.getfqdn()}
            allowed |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    config = ServerConfig(
        run_dir=run_dir,
        token=token,
        reviewer=reviewer,
        read_only=read_only,
        allowed_hosts=tuple(sorted(allowed)),
        any_ip_host=host in ("0.0.0.0", "::"),
    )
    app = create_app(config)
    port = port or _free_port(host)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/?token={token}"
    click.echo(f"reviewing {run_dir} as '{reviewer}'" + (" (read-only)" if read_only else ""))
    for msg in config.messages:
        click.echo(f"note: {msg}")
    click.echo(f"open {url}")
    click.echo("stop with Ctrl+C", err=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning" if not os.environ.get("THAWDETECT_WEB_DEBUG") else "info",
        access_log=False,
    )
