"""`python -m facility_app`: the `facility` command, for when the script is not on PATH."""

from facility_app.cli import app

app()
