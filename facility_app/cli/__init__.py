"""The `facility` command: the Typer app, assembled from one module per sub-command group.

`serve` (demo, run, check), `dead_letters`, and the groups `sim`, `rules`, `users`, `report`,
`broker` and `db`; `options` and `tokens` hold what they share. The commands come first in
--help, then the groups, in the order a newcomer meets them.
"""

from __future__ import annotations

import typer

from facility_app.cli import broker, db, dead_letters, report, rules, serve, sim, users

app = typer.Typer(
    help="Facility monitoring: gateway, rules, duty desk and simulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve.demo)
app.command()(serve.run)
app.command()(serve.check)
app.command("dead-letters")(dead_letters.dead_letters)
app.add_typer(sim.app, name="sim")
app.add_typer(rules.app, name="rules")
app.add_typer(users.app, name="users")
app.add_typer(report.app, name="report")
app.add_typer(broker.app, name="broker")
app.add_typer(db.app, name="db")
