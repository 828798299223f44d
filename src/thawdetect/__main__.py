"""``python -m thawdetect``: the command line."""

from thawdetect.cli.main import main

if __name__ == "__main__":
    main()
