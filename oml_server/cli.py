"""`oml-server`: the command line (a Flask CLI group).

run, engine, deliver, prune, db (Flask-Migrate), provision, import-contacts, create-user, shell, routes.
"""
import json
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext


def main():
    from gevent import monkey
    monkey.patch_all()
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False,
                     help="OMniLeads-compatible contact-center server.")
    cli.add_command(shell_command)
    cli.add_command(routes_command)
    cli.add_command(secrets_command)  # needs no app: it makes what the app needs to start
    cli.main(prog_name="oml-server")


def _create_app():
    from . import create_app, logging_setup
    from .config import InsecureConfiguration
    try:
        logging_setup.configure()  # before the app, so whatever it logs is in the chosen format
        return create_app()
    except (InsecureConfiguration, logging_setup.BadLogSetting) as exc:  # a sentence, not a traceback
        click.echo(f"oml-server: {exc}", err=True)
        sys.exit(2)


@click.command("secrets")
@click.argument("path", type=click.Path(dir_okay=False), default="instance/secrets.env")
def secrets_command(path):
    """Generate SECRET_KEY, SIP_SECRET_KEY and ARI_PASSWORD into PATH (mode 0600) unless it
    has them already; a shell sources it (`set -a; . PATH; set +a`). Used by `make run`."""
    from . import secrets_file
    _, created = secrets_file.ensure(path)
    click.echo(f"{'generated' if created else 'kept'} secrets in {path}", err=True)


def register_commands(app):
    app.cli.add_command(run_command)
    app.cli.add_command(engine_command)
    app.cli.add_command(deliver_command)
    app.cli.add_command(prune_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(provision_command)
    app.cli.add_command(import_contacts_command)


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--engine/--no-engine", default=True, show_default=True,
              help="Run the ARI engine in this process too (one engine per Asterisk app).")
@with_appcontext
def run_command(host, port, engine):
    """Serve the API with gevent's WSGI server (and the ARI engine's greenlets)."""
    from .serve import serve
    serve(current_app._get_current_object(), host, port, with_engine=engine)


@click.command("engine")
@with_appcontext
def engine_command():
    """Run the ARI engine alone (split deployment: API workers elsewhere, one engine per app),
    with the CRM delivery greenlets."""
    from ari_engine.runner import start_engine
    from . import delivery_worker
    app = current_app._get_current_object()
    engine = start_engine(app)
    delivering = delivery_worker.start(app)
    _wait_for_signal()
    if delivering is not None:
        delivering.stop()
    engine.stop()


@click.command("deliver")
@with_appcontext
def deliver_command():
    """Run only the CRM deliveries (webhooks, external sites): for split deployments. Any
    number may run; each delivery is claimed by one."""
    from . import delivery_worker
    app = current_app._get_current_object()
    app.config["DELIVERY_ENABLED"] = True
    delivering = delivery_worker.start(app)
    _wait_for_signal()
    delivering.stop()


@click.command("prune")
@click.option("--batch", default=5000, show_default=True, type=click.IntRange(1),
              help="rows deleted per transaction")
@with_appcontext
def prune_command(batch):
    """Remove events and finished deliveries older than EVENTS_RETENTION_DAYS /
    DELIVERIES_RETENTION_DAYS (never a pending delivery, nor an event one still needs)."""
    from .services import prune
    removed = prune.prune(current_app.config, batch,
                          progress=lambda table, n: click.echo(f"{table}: {n} removed", err=True))
    click.echo(json.dumps(removed))


def _wait_for_signal():
    import signal

    import gevent.event
    stopped = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopped.set)
    gevent.signal_handler(signal.SIGINT, stopped.set)
    stopped.wait()


@click.command("create-user")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(["Administrador", "Gerente", "Supervisor", "Referente", "Agente"]),
              default="Agente", show_default=True)
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--email", default="")
@click.option("--sip-extension", default=None)
@with_appcontext
def create_user_command(username, password, role, first_name, last_name, email, sip_extension):
    """Create a user (with its agent profile when the role is Agente)."""
    from sqlalchemy.exc import IntegrityError
    from .extensions import db
    from .services import users
    try:
        user = users.create_user(username, password, role, first_name, last_name, email,
                                 sip_extension=sip_extension)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"user {username!r} (or its SIP extension) already exists")
    out = {"id": user.id, "username": user.username, "role": user.role}
    if user.agent is not None:
        out.update(agent_id=user.agent.id, sip_extension=user.agent.sip_extension)
    click.echo(json.dumps(out))


@click.command("provision")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def provision_command(path):
    """Make the database hold what a YAML/JSON provisioning file declares (all or nothing)."""
    from .services import provisioning
    try:
        ids = provisioning.provision_file(path)
    except provisioning.ProvisioningError as exc:
        raise click.ClickException(str(exc))
    click.echo(json.dumps(ids, indent=2, ensure_ascii=False))


@click.command("import-contacts")
@click.option("--campaign", "campaign_id", required=True, type=int, help="internal campaign id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_contacts_command(campaign_id, path):
    """Stream a CSV into the campaign's contact database, reporting bad rows by line number."""
    from .services import contact_import
    try:
        report = contact_import.import_csv(campaign_id, path, progress=True)
    except contact_import.ImportFailed as exc:
        raise click.ClickException(str(exc))
    for line, message in report.errors[:1000]:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(json.dumps({"imported": report.imported, "rejected": len(report.errors)}))
    if report.errors:
        sys.exit(1 if report.imported == 0 else 0)
