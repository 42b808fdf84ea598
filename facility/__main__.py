from facility.cli import app

app()
