import click

from thawdetect import __version__


@click.group()
@click.version_option(__version__, prog_name="thawdetect")
def cli() -> None:
    """thawdetect."""


def main() -> None:
    cli()
