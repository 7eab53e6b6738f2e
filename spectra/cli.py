"""The `spectra` command line."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import SQLAlchemyError

from spectra import __version__
from spectra.api import Monitor
from spectra.runtime.redaction import redact_logs

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy.orm import Session

    from spectra.domain.global_maintenance import Status as GlobalMaintenanceStatus

log = logging.getLogger("spectra")

EXIT_INVALID = 1
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the database (or another service) cannot be reached
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug of ours, not bad input


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spectra")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """SpectraMonitor: uptime monitoring, on-call paging and status pages as code."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()  # no secret in any log line, whoever logs it (runtime/redaction.py)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--skip-secrets",
    is_flag=True,
    help="Do not require the Secrets that secretKeyRefs name (for repos whose Secrets come from elsewhere).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, no summary.")
def validate(paths: tuple[Path, ...], skip_secrets: bool, quiet: bool) -> None:
    """Check manifests in files and folders; print `file: Kind/namespace/name: field: message` per error.

    Exits 1 when anything is wrong, so it can gate pull requests.
    """
    from spectra.manifests import load_paths

    result = load_paths(paths, check_secrets=not skip_secrets)
    for error in result.errors:
        click.echo(str(error))
    if not quiet:
        summary = f"{len(result.resources)} object(s), {len(result.secrets)} Secret(s) in {len(result.files)} file(s)"
        if result.skipped:
            summary += f", {len(result.skipped)} object(s) of other kinds ignored"
        status = f"{len(result.errors)} error(s)" if result.errors else "ok"
        click.echo(f"{summary}: {status}", err=True)
    if result.errors:
        sys.exit(EXIT_INVALID)


@cli.command()
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per kind here instead of printing them all.",
)
def crds(output_dir: Path | None) -> None:
    """Print the CustomResourceDefinitions (generated from the API models)."""
    from spectra.api.crd import all_crds, file_name, render, render_all

    if output_dir is None:
        click.echo(render_all(), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for crd in all_crds():
        target = output_dir / file_name(crd)
        target.write_text(render(crd), encoding="utf-8")
        click.echo(f"wrote {target}", err=True)


database_option = click.option(
    "--database",
    "database",
    metavar="URL",
    help="SQLAlchemy URL. Default: $SPECTRA_DATABASE_URL, else sqlite:///spectra.db.",
)


@cli.group()
def db() -> None:
    """Database schema: migrations."""


@db.command("upgrade")
@database_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(database: str | None, revision: str) -> None:
    """Migrate the database to the newest schema (safe to run repeatedly)."""
    from spectra.store import database_url, redacted, upgrade

    url = database_url(database)
    upgrade(url, revision)
    click.echo(f"{redacted(url)}: at revision {revision}", err=True)


@db.command("downgrade")
@database_option
@click.argument("revision")
def db_downgrade(database: str | None, revision: str) -> None:
    """Migrate down to REVISION (e.g. -1, or base to drop everything)."""
    from spectra.store import database_url, downgrade, redacted

    url = database_url(database)
    downgrade(url, revision)
    click.echo(f"{redacted(url)}: at revision {revision}", err=True)


@db.command("current")
@database_option
def db_current(database: str | None) -> None:
    """Print the database's schema revision."""
    from spectra.store import current_revision, database_url, head_revision

    current = current_revision(database_url(database))
    head = head_revision()
    click.echo(f"{current or 'empty'} (newest: {head})")


# --- spectra users: accounts in the store (spectra/auth/accounts.py) -------------------------------------


@cli.group()
def users() -> None:
    """Accounts: add one (with a one-time setup link), list, disable, enable, reset MFA, set roles.

    Each command migrates the database first, as `apply` does; every change is audited with actor `cli`.
    """


def _in_store(database: str | None, action: Callable[[Session, datetime], str]) -> str:
    """`action(session, now)` in one transaction on the store; a refusal prints `spectra: <why>`, exit 1."""
    from datetime import UTC
    from datetime import datetime as clock

    from spectra.auth.accounts import AccountError
    from spectra.auth.api_tokens import TokenProblem
    from spectra.auth.policy import Denied
    from spectra.store import database_url, make_engine, session_factory, upgrade
    from spectra.store.engine import write_transaction

    url = database_url(database)
    upgrade(url)
    engine = make_engine(url)
    try:
        # Every action reads before it writes, maybe beside a `spectra run` on SQLite: hold the write lock.
        with write_transaction(session_factory(engine)) as session:
            return action(session, clock.now(UTC))
    except (AccountError, TokenProblem, Denied) as exc:
        click.echo(f"spectra: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    finally:
        engine.dispose()


@users.command("add")
@click.argument("email")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--platform-admin", is_flag=True, help="May manage tenants, impersonate and switch global maintenance.")
@click.option(
    "--organization",
    metavar="NAME",
    help="Make the account a member of this Organization. Default while no Organization exists: the implicit one.",
)
@click.option("--role", type=click.Choice(["user", "admin"]), help="Role there. Default: admin for a platform admin.")
@database_option
def users_add(
    *,
    email: str,
    display_name: str,
    platform_admin: bool,
    organization: str | None,
    role: str | None,
    database: str | None,
) -> None:
    """Create an invited account; print its one-time setup link (valid for 7 days) on stdout.

    Adding an address whose account is still invited prints a new link. The link is signed with
    SPECTRA_SECRET_KEY, which must be the key of the server that opens it (`spectra run` or `spectra web`);
    unset, on a SQLite database, the key `spectra run` keeps on disk. It points at SPECTRA_PUBLIC_URL
    (default http://127.0.0.1:8080, the address of `spectra run`).
    """
    from spectra.auth.accounts import add_user, is_standalone, link_url, links_base
    from spectra.auth.identity import Actor
    from spectra.auth.policy import IMPLICIT_ORGANIZATION
    from spectra.tokens import Purpose

    if not os.environ.get("SPECTRA_SECRET_KEY"):
        from spectra.store import database_url

        if not database_url(database).startswith("sqlite"):
            click.echo(
                "spectra: SPECTRA_SECRET_KEY is not set: the server would refuse a link signed with a key of "
                "this command alone; set the key `spectra web` has",
                err=True,
            )
            sys.exit(EXIT_INVALID)
        _keep_secret_key()  # a SQLite store is `spectra run`'s: sign with the key it keeps
    token: list[str] = []

    def act(session: Session, now: datetime) -> str:
        where = IMPLICIT_ORGANIZATION if organization is None and is_standalone(session) else organization
        wanted = role or ("admin" if platform_admin else "user")
        user, link = add_user(
            session,
            email,
            display_name=display_name,
            platform_admin=platform_admin,
            actor=Actor.system("cli"),
            now=now,
            organization=where,
            role=wanted,
        )
        token.append(link)
        kind = "platform admin" if user.platform_admin else "account"
        member = f"{wanted} of {where or 'the implicit organization'}" if where is not None else "in no organization"
        return f"{user.email}: invited {kind}, {member}; send them this one-time setup link (valid for 7 days):"

    click.echo(_in_store(database, act), err=True)
    click.echo(link_url(links_base(None), Purpose.SETUP, token[0]))


@users.command("list")
@database_option
def users_list(database: str | None) -> None:
    """Print every account: email, status, MFA, platform admin, memberships (organization:role)."""
    from spectra.auth.accounts import list_users
    from spectra.auth.identity import Actor

    def act(session: Session, now: datetime) -> str:
        rows = [("EMAIL", "STATUS", "MFA", "PLATFORM ADMIN", "MEMBERSHIPS")]
        for user in list_users(session, actor=Actor.system("cli"), now=now):
            memberships = ", ".join(f"{org or '(implicit)'}:{role}" for org, role in user.memberships)
            mfa, admin = ("on" if user.mfa_enabled else "off"), ("yes" if user.platform_admin else "no")
            rows.append((user.email, str(user.status), mfa, admin, memberships or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ("  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4] for row in rows)
        return "\n".join(line.rstrip() for line in lines)

    click.echo(_in_store(database, act))


@users.command("disable")
@click.argument("email")
@database_option
def users_disable(email: str, database: str | None) -> None:
    """Disable EMAIL's account and end its sessions (the last active platform admin stays enabled)."""
    from spectra.auth.accounts import disable
    from spectra.auth.identity import Actor

    def act(session: Session, now: datetime) -> str:
        changed = disable(session, email, actor=Actor.system("cli"), now=now)
        return f"{email.strip().lower()}: {'disabled' if changed else 'was disabled already'}"

    click.echo(_in_store(database, act), err=True)


@users.command("enable")
@click.argument("email")
@database_option
def users_enable(email: str, database: str | None) -> None:
    """Enable EMAIL's disabled account again."""
    from spectra.auth.accounts import enable
    from spectra.auth.identity import Actor

    def act(session: Session, now: datetime) -> str:
        changed = enable(session, email, actor=Actor.system("cli"), now=now)
        return f"{email.strip().lower()}: {'enabled' if changed else 'was not disabled'}"

    click.echo(_in_store(database, act), err=True)


@users.command("reset-mfa")
@click.argument("email")
@database_option
def users_reset_mfa(email: str, database: str | None) -> None:
    """Remove EMAIL's two-factor secret and recovery codes (they enrol again)."""
    from spectra.auth.accounts import reset_mfa
    from spectra.auth.identity import Actor

    def act(session: Session, now: datetime) -> str:
        changed = reset_mfa(session, email, actor=Actor.system("cli"), now=now)
        outcome = "two-factor authentication reset" if changed else "had no two-factor authentication"
        return f"{email.strip().lower()}: {outcome}"

    click.echo(_in_store(database, act), err=True)


@users.command("set-role")
@click.argument("email")
@click.option("--organization", required=True, metavar="NAME", help='The Organization ("" for the implicit one).')
@click.option("--role", required=True, type=click.Choice(["user", "admin"]), help="The new role.")
@database_option
def users_set_role(email: str, organization: str, role: str, database: str | None) -> None:
    """Change EMAIL's role in an organization (it takes effect at their next token refresh)."""
    from spectra.auth.accounts import set_role
    from spectra.auth.identity import Actor

    def act(session: Session, now: datetime) -> str:
        set_role(session, email, organization, role, actor=Actor.system("cli"), now=now)
        return f"{email.strip().lower()}: {role} of {organization or 'the implicit organization'}"

    click.echo(_in_store(database, act), err=True)


@users.command("token")
@click.argument("email")
@click.option("--organization", required=True, metavar="NAME", help='The Organization ("" for the implicit one).')
@click.option("--name", required=True, help="A name to tell it by (unique per person and organization).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read", "incidents:write", "statuspages:write", "admin"]),
    help="What it may do; repeat for more (never more than EMAIL's role allows).",
)
@click.option("--expires", metavar="DURATION", help="Lifetime, e.g. 90d or 12h. Default: until revoked.")
@database_option
def users_token(
    *, email: str, organization: str, name: str, scopes: tuple[str, ...], expires: str | None, database: str | None
) -> None:
    """Create an API token of EMAIL's membership in an organization; print it once on stdout.

    Clients send it as `Authorization: Bearer spt_...`. Only its digest is stored: it cannot be shown
    again. Audited with actor `cli`.
    """
    from sqlalchemy import select

    from spectra.api.durations import parse_duration
    from spectra.auth import api_tokens
    from spectra.auth.accounts import AccountError, find_user
    from spectra.auth.identity import Principal
    from spectra.store import Membership, Role

    lifetime = None
    if expires is not None:
        try:
            lifetime = parse_duration(expires, calendar_units=True)
        except ValueError as exc:
            click.echo(f"spectra: --expires: {exc}", err=True)
            sys.exit(EXIT_INVALID)
    shown: list[str] = []

    def act(session: Session, now: datetime) -> str:
        user = find_user(session, email)
        membership = None
        if user is not None:
            membership = session.scalars(
                select(Membership).where(Membership.user_id == user.id, Membership.organization == organization)
            ).first()
        if user is None or membership is None:
            raise AccountError(
                f"{email.strip().lower()} is not a member of {organization or 'the implicit organization'}"
            )
        principal = Principal(
            user_id=user.id,
            email=user.email,
            organization=organization,
            role=Role(membership.role),
            platform_admin=user.platform_admin,
            via="cli",
        )
        text, row = api_tokens.create(
            session,
            principal,
            name=name,
            scopes=scopes,
            expires_at=None if lifetime is None else now + lifetime,
            now=now,
        )
        shown.append(text)
        until = "until revoked" if row.expires_at is None else f"until {row.expires_at:%Y-%m-%d %H:%M} UTC"
        return f"{user.email}: API token {name!r} ({', '.join(scopes)}) {until}; it is shown once:"

    click.echo(_in_store(database, act), err=True)
    click.echo(shown[0])


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@database_option
@click.option("--prune/--no-prune", default=True, show_default=True, help="Remove objects no longer in PATHS.")
def apply(paths: tuple[Path, ...], database: str | None, prune: bool) -> None:
    """Validate manifests and write them to the store (what `spectra run` does at start and on change).

    Nothing is written when any manifest is invalid.
    """
    from spectra.manifests import load_paths
    from spectra.reconcile import MANIFEST_SOURCE, apply_set
    from spectra.store import database_url, make_engine, session_factory, upgrade
    from spectra.store.engine import write_transaction

    result = load_paths(paths)
    for error in result.errors:
        click.echo(str(error))
    if result.errors:
        click.echo(f"{len(result.errors)} error(s): nothing applied", err=True)
        sys.exit(EXIT_INVALID)
    url = database_url(database)
    upgrade(url)
    engine = make_engine(url)
    try:
        # It reads before it writes, maybe beside a `spectra run` on SQLite: hold the write lock.
        with write_transaction(session_factory(engine)) as session:
            report = apply_set(
                session,
                [item.resource for item in result.resources],
                MANIFEST_SOURCE,
                prune=prune,
                secrets=result,
                files=result.source_files(paths),
            )
    finally:
        engine.dispose()
    click.echo(str(report), err=True)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@database_option
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT", help="Web address.")
@click.option("--concurrency", default=500, show_default=True, help="Checks in flight at most.")
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    help="Where browser screenshots go.",
)
def run(paths: tuple[Path, ...], database: str | None, listen: str, concurrency: int, artifacts: Path) -> None:
    """Run everything in one process: load PATHS, check the monitors, alert, serve /healthz, /metrics, /api/v1/monitors.

    Pages go out through SendGrid / Twilio when their keys are set (else to the log); ack links and the
    Twilio webhooks are served here too (links use SPECTRA_PUBLIC_URL, default http://HOST:PORT).
    Manifests are reloaded when they change; SIGTERM stops cleanly.
    """
    from spectra.processes.run import Options, Standalone
    from spectra.store import database_url

    host, port = _server_setup(listen)
    _keep_secret_key()
    options = Options(
        paths=list(paths),
        database_url=database_url(database),
        host=host,
        port=port,
        concurrency=concurrency,
        artifacts_dir=artifacts,
    )
    sys.exit(_run_async(Standalone(options).run()))


@cli.command()
@click.option("--location", required=True, help="The probe location this worker serves (e.g. eu-west).")
@database_option
@click.option("--listen", default="0.0.0.0:8081", show_default=True, metavar="HOST:PORT", help="Health and metrics.")
@click.option("--concurrency", default=1000, show_default=True, help="Checks in flight at most.")
@click.option(
    "--allow-private-targets",
    is_flag=True,
    envvar="SPECTRA_ALLOW_PRIVATE_TARGETS",
    help="Let monitors probe loopback and private addresses (refused by default; metadata addresses always are).",
)
def probe(location: str, database: str | None, listen: str, concurrency: int, allow_private_targets: bool) -> None:
    """Run a probe worker of one location against the shared database (cluster mode).

    Workers of the same location share its monitors through leases; start as many as you need.
    """
    from spectra.processes.probe import ProbeOptions, run_probe
    from spectra.store import database_url

    host, port = _server_setup(listen)
    options = ProbeOptions(
        location=location,
        database_url=database_url(database),
        host=host,
        port=port,
        concurrency=concurrency,
        allow_private=allow_private_targets,
        secrets=_cluster_secrets(),
    )
    sys.exit(_run_async(run_probe(options)))


@cli.command()
@database_option
@click.option(
    "--listen",
    default="0.0.0.0:8082",
    show_default=True,
    metavar="HOST:PORT",
    help="Health, metrics, ack links and Twilio webhooks.",
)
@click.option(
    "--allow-private-targets",
    is_flag=True,
    envvar="SPECTRA_ALLOW_PRIVATE_TARGETS",
    help="Let webhook and Slack deliveries reach loopback and private addresses (refused by default; metadata "
    "addresses always are).",
)
def alerter(database: str | None, listen: str, allow_private_targets: bool) -> None:
    """Run the alerter (cluster mode): incidents, escalation and notification delivery from the shared database.

    Start two or more replicas: one holds the lease in the database and alerts, the others stand by.
    Set SPECTRA_PUBLIC_URL (links, Twilio signatures) and the same SPECTRA_SECRET_KEY on every replica.
    """
    from spectra.processes.alerter import AlerterOptions, run_alerter
    from spectra.store import database_url

    host, port = _server_setup(listen)
    options = AlerterOptions(
        database_url=database_url(database), host=host, port=port, allow_private=allow_private_targets
    )
    sys.exit(_run_async(run_alerter(options, secrets=_cluster_secrets())))


@cli.command()
@database_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="SPECTRA_OPERATOR_CONFIG",
    help="Operator settings (YAML; the chart mounts /etc/spectra/operator.yaml). Default: built-in defaults.",
)
@click.option("--listen", default="0.0.0.0:8083", show_default=True, metavar="HOST:PORT", help="Health and metrics.")
@click.option("--kubeconfig", envvar="KUBECONFIG", metavar="PATH", help="Outside a cluster: which kubeconfig to use.")
def operator(database: str | None, config_path: Path | None, listen: str, kubeconfig: str | None) -> None:
    """Run the Kubernetes operator: reconcile SpectraMonitor resources into the shared database.

    Keeps .status and Events current, makes a probe Deployment per location in use and an Ingress per
    StatusPage host name. Two replicas are safe: kopf peering and a database lease keep one active.
    """
    from spectra.operator.settings import SettingsError, load_settings
    from spectra.processes.operator import OperatorOptions, run_operator
    from spectra.store import database_url

    host, port = _server_setup(listen)
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's login reads it from the environment
    try:
        settings = load_settings(config_path)
    except SettingsError as exc:
        click.echo(f"spectra: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    options = OperatorOptions(
        database_url=database_url(database), settings=settings, host=host, port=port, kubeconfig=kubeconfig
    )
    sys.exit(_run_async(run_operator(options)))


def _cluster_secrets() -> Any:
    """Secret values from the Kubernetes API when SPECTRA_SECRETS=kubernetes (the chart sets it), else none."""
    choice = os.environ.get("SPECTRA_SECRETS", "").strip().lower()
    if choice in ("", "none"):
        return None
    if choice != "kubernetes":
        raise click.BadParameter(f"SPECTRA_SECRETS={choice!r}: expected kubernetes or none")
    from spectra.operator.kube import Kube, load_config
    from spectra.operator.secrets import KubernetesSecrets

    return KubernetesSecrets(Kube(load_config(os.environ.get("KUBECONFIG"))).read_secret)


@cli.command()
@database_option
@click.option(
    "--listen",
    default="0.0.0.0:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Status pages, subscription and ack links, Twilio webhooks, health and metrics.",
)
def web(database: str | None, listen: str) -> None:
    """Serve status pages, subscription links, ack links and Twilio webhooks (cluster mode; any number of replicas).

    Page incidents and subscriber mails come from `spectra alerter`. Set SPECTRA_PUBLIC_URL to this
    server's public address and the same SPECTRA_SECRET_KEY as the alerters.
    """
    from spectra.processes.web import WebOptions, run_web
    from spectra.store import database_url

    host, port = _server_setup(listen)
    sys.exit(_run_async(run_web(WebOptions(database_url=database_url(database), host=host, port=port))))


def _keep_secret_key() -> None:
    """Standalone: SPECTRA_SECRET_KEY from the key kept on disk when it is not set (spectra.runtime.kept_key)."""
    from spectra.runtime.kept_key import KeptKeyError, keep_secret_key

    try:
        kept = keep_secret_key()
    except KeptKeyError as refused:
        click.echo(f"spectra: {refused}", err=True)
        sys.exit(EXIT_INVALID)
    if kept is None:
        return
    verb = "made and kept" if kept.made else "kept"
    log.info("SPECTRA_SECRET_KEY is not set: using the key %s in %s", verb, kept.path)
    if kept.loose:
        log.warning("%s can be read by others than its owner: chmod 600 %s", kept.path, kept.path)


def _server_setup(listen: str) -> tuple[str, int]:
    """HOST:PORT of a server command, and INFO logging (servers log what they do; -v only adds detail)."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    return host.strip("[]"), int(port)


def _run_async(coroutine: Any) -> int:
    """Run on uvloop where it is installed (lower scheduling lag near saturation)."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return int(asyncio.run(coroutine))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return int(runner.run(coroutine))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--strict-egress",
    is_flag=True,
    help="Refuse loopback and private targets as the cluster does (default: allowed, as in standalone mode).",
)
@click.option("--concurrency", default=16, show_default=True, help="Checks run at the same time.")
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    help="Where browser screenshots go.",
)
@click.option(
    "--skip-secrets",
    is_flag=True,
    help="Secrets live outside these files: monitors that need a Secret value not declared here are skipped.",
)
def check(paths: tuple[Path, ...], strict_egress: bool, concurrency: int, artifacts: Path, skip_secrets: bool) -> None:
    """Run each monitor in PATHS once and print a table; exit 1 when any is down.

    The pull-request dry run: invalid manifests are reported as by `validate` and nothing is checked.
    """
    import asyncio

    from spectra.api.cross_checks import secret_refs
    from spectra.domain.egress import EgressGuard, EgressPolicy
    from spectra.manifests import load_paths
    from spectra.probe.context import CheckContext, CheckRequest
    from spectra.probe.oneshot import check_once, render_table

    result = load_paths(paths, check_secrets=not skip_secrets)
    for error in result.errors:
        click.echo(str(error))
    if result.errors:
        click.echo(f"{len(result.errors)} error(s): nothing checked", err=True)
        sys.exit(EXIT_INVALID)
    monitors = [item.resource for item in result.resources if isinstance(item.resource, Monitor)]
    requests = [CheckRequest(monitor.namespace, monitor.name, monitor.spec) for monitor in monitors]
    skip: dict[str, str] = {}
    for monitor, request in zip(monitors, requests, strict=True):
        for field, source in secret_refs(monitor):
            ref = source.secret_key_ref
            if result.get(monitor.namespace, ref.name, ref.key) is None:
                skip[request.ref] = f"not checked: {field} names Secret {ref.name!r}, which is not in these files"
                break
    policy = EgressPolicy() if strict_egress else EgressPolicy.standalone()
    ctx = CheckContext(egress=EgressGuard(policy), secrets=result, artifacts_dir=artifacts)
    outcomes = asyncio.run(check_once(requests, ctx, concurrency=concurrency, skip=skip))
    click.echo(render_table(outcomes))
    failed = sum(outcome.failed for outcome in outcomes)
    click.echo(f"{len(outcomes)} monitor(s), {failed} down", err=True)
    if failed:
        sys.exit(EXIT_INVALID)


@cli.command()
@click.argument("schedule")
@click.option(
    "--at", "at_text", metavar="TIME", help="ISO 8601 time with offset, e.g. 2026-03-30T09:00+02:00. Default: now."
)
@click.option(
    "--manifests",
    "paths",
    multiple=True,
    default=(".",),
    show_default=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Manifest files or folders (repeatable).",
)
@click.option("-n", "--namespace", help="Namespace of the Schedule. Default: any, when the name is unique.")
@click.option(
    "--server",
    metavar="URL",
    help="Ask this server instead of reading manifests, overrides taken in the console included "
    "(default: $SPECTRA_URL unless --manifests is given).",
)
@click.option(
    "--token", envvar="SPECTRA_TOKEN", metavar="TOKEN", help="An API token with the read scope ($SPECTRA_TOKEN)."
)
def oncall(
    *,
    schedule: str,
    at_text: str | None,
    paths: tuple[Path, ...],
    namespace: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """Print who is on call for SCHEDULE (at TIME) and when that next changes.

    From manifests, Secrets are not needed and not checked: the answer depends on the Schedule and
    Contacts only. With --server, the server answers, with the overrides taken in its console or API.
    """
    from datetime import UTC, datetime

    from click.core import ParameterSource

    if at_text is None:
        at = datetime.now(UTC)
    else:
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise click.BadParameter(f"{at_text!r} is not an ISO 8601 time", param_hint="--at") from None
        if at.tzinfo is None:
            raise click.BadParameter(f"{at_text!r} has no offset; add one, e.g. +02:00 or Z", param_hint="--at")
    manifests_given = click.get_current_context().get_parameter_source("paths") is not ParameterSource.DEFAULT
    if server is None and not manifests_given:
        server = os.environ.get("SPECTRA_URL") or None
    if server is not None:
        _oncall_from_server(server, token, schedule, namespace, at)
        return
    _oncall_from_manifests(schedule, at, paths, namespace)


def _oncall_local(instant: datetime, zone_name: str) -> str:
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M %Z (UTC%z)")


def _oncall_handoff_line(handoff: datetime | None, zone_name: str) -> str:
    from datetime import UTC

    from spectra.oncall import HANDOFF_HORIZON

    if handoff is None:
        return f"Next handoff: none within {HANDOFF_HORIZON.days // 7} weeks"
    return f"Next handoff: {_oncall_local(handoff, zone_name)} = {handoff.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _oncall_ask(base: str, token: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    """GET `path` of the server as JSON; exits with the server's sentence when it refuses."""
    import httpx

    try:
        answer = httpx.get(
            f"{base}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=30,
        )
    except httpx.HTTPError as failed:
        click.echo(f"spectra: {base} did not answer: {failed}", err=True)
        sys.exit(EXIT_INVALID)
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        click.echo(f"spectra: {base} answered {answer.status_code}: {detail}", err=True)
        sys.exit(EXIT_INVALID)
    body = answer.json()
    assert isinstance(body, dict)
    return body


def _oncall_namespace(base: str, token: str, schedule: str) -> str:
    """The namespace of the one Schedule named `schedule` the token may see (GET /api/v1/oncall, every page)."""
    import httpx

    found: list[str] = []
    params = {"limit": "500"}
    while True:
        page = _oncall_ask(base, token, "/api/v1/oncall", params)
        found.extend(item["namespace"] for item in page["items"] if item["name"] == schedule)
        if not page["next"]:
            break
        params = dict(httpx.URL(page["next"]).params)
    if not found:
        click.echo(f"spectra: no Schedule named {schedule!r} on {base}", err=True)
        sys.exit(EXIT_INVALID)
    if len(found) > 1:
        several = ", ".join(sorted(found))
        click.echo(f"spectra: Schedule {schedule!r} is in several namespaces ({several}); pick one with -n", err=True)
        sys.exit(EXIT_INVALID)
    return found[0]


def _oncall_from_server(server: str, token: str | None, schedule: str, namespace: str | None, at: datetime) -> None:
    """`spectra oncall --server`: the lines of the manifests' mode, from the server, plus its stored overrides."""
    from datetime import datetime
    from urllib.parse import quote

    if not token:
        raise click.UsageError("give --token TOKEN or set SPECTRA_TOKEN (an API token with the read scope)")
    base = server.rstrip("/")
    namespace = namespace or _oncall_namespace(base, token, schedule)
    path = f"/api/v1/oncall/{quote(namespace, safe='')}/{quote(schedule, safe='')}"
    item = _oncall_ask(base, token, path, {"days": "1", "at": at.isoformat()})["schedule"]
    zone = item["timeZone"]

    def person(entry: dict[str, Any]) -> str:
        shown = entry.get("displayName")
        return f"{entry['name']} ({shown})" if shown else f"{entry['name']} (no Contact found)"

    names = [person(entry) for entry in item["onCall"]]
    handoff = datetime.fromisoformat(item["nextHandoff"]) if item["nextHandoff"] else None
    click.echo(f"Schedule {item['namespace']}/{item['name']} ({zone}) at {_oncall_local(at, zone)}")
    click.echo(f"On call: {', '.join(names) if names else 'nobody'}")
    click.echo(_oncall_handoff_line(handoff, zone))
    for override in item["overrides"]:
        start, end = datetime.fromisoformat(override["start"]), datetime.fromisoformat(override["end"])
        reason = f": {override['reason']}" if override["reason"] else ""
        click.echo(
            f"Override {override['id']}: {person(override['contact'])} from {_oncall_local(start, zone)} "
            f"until {_oncall_local(end, zone)}, taken by {override['takenBy']}{reason}"
        )


def _oncall_from_manifests(schedule: str, at: datetime, paths: tuple[Path, ...], namespace: str | None) -> None:
    from spectra.api import Contact, Schedule
    from spectra.manifests import load_paths
    from spectra.oncall import next_handoff, on_call

    result = load_paths(paths, check_secrets=False)
    for error in result.errors:
        click.echo(str(error))
    if result.errors:
        click.echo(f"{len(result.errors)} error(s) in the manifests", err=True)
        sys.exit(EXIT_INVALID)
    found = [
        item.resource
        for item in result.resources
        if isinstance(item.resource, Schedule)
        and item.resource.name == schedule
        and (namespace is None or item.resource.namespace == namespace)
    ]
    where = f" in namespace {namespace}" if namespace else ""
    if not found:
        click.echo(f"spectra: no Schedule named {schedule!r}{where} in {', '.join(map(str, paths))}", err=True)
        sys.exit(EXIT_INVALID)
    if len(found) > 1:
        namespaces = ", ".join(sorted(item.namespace for item in found))
        click.echo(
            f"spectra: Schedule {schedule!r} is in several namespaces ({namespaces}); pick one with -n", err=True
        )
        sys.exit(EXIT_INVALID)
    target = found[0]
    assert isinstance(target, Schedule)
    zone_name = target.spec.time_zone
    contacts = {
        item.resource.name: item.resource
        for item in result.resources
        if isinstance(item.resource, Contact) and item.resource.namespace == target.namespace
    }

    def person(name: str) -> str:
        contact = contacts.get(name)
        return f"{name} ({contact.spec.display_name})" if contact is not None else f"{name} (no Contact found)"

    names = on_call(target.spec, at)
    handoff = next_handoff(target.spec, at)
    click.echo(f"Schedule {target.namespace}/{target.name} ({zone_name}) at {_oncall_local(at, zone_name)}")
    click.echo(f"On call: {', '.join(person(name) for name in names) if names else 'nobody'}")
    click.echo(_oncall_handoff_line(handoff, zone_name))


# --- spectra maintenance global: the platform-wide switch (spectra/domain/global_maintenance.py) ------------


@cli.group()
def maintenance() -> None:
    """Maintenance across the whole platform (per-monitor windows are MaintenanceWindow objects)."""


@maintenance.group("global")
def maintenance_global() -> None:
    """Global maintenance: while on, incidents open but nobody is paged; pages wait until it ends."""


@maintenance_global.command("on")
@database_option
@click.option("--message", required=True, help="Why (audited; shown on status pages with --show-on-status-pages).")
@click.option(
    "--until",
    "until_text",
    metavar="TIME",
    help="When it ends by itself: ISO 8601 with an offset (2026-03-02T12:00+01:00) or a duration (90m, 2h, 1d). "
    "Default: when turned off.",
)
@click.option("--show-on-status-pages", is_flag=True, help="Every public status page shows the message as a banner.")
def maintenance_global_on(
    database: str | None, message: str, until_text: str | None, show_on_status_pages: bool
) -> None:
    """Turn global maintenance on (again: change its message, end or banner). Audited, as actor `cli`."""
    from spectra.auth.global_maintenance import turn_on
    from spectra.auth.identity import Actor
    from spectra.domain.global_maintenance import parse_until

    def change(session: Session, now: datetime) -> GlobalMaintenanceStatus:
        until = parse_until(until_text, now=now) if until_text is not None else None
        return turn_on(
            session,
            message=message,
            until=until,
            show_on_status_pages=show_on_status_pages,
            actor=Actor.system("cli"),
            now=now,
        )

    _print_global_maintenance(_global_maintenance(database, change))


@maintenance_global.command("off")
@database_option
def maintenance_global_off(database: str | None) -> None:
    """Turn global maintenance off: pages it held go out now for incidents still open. Audited, as actor `cli`."""
    from spectra.auth.global_maintenance import turn_off
    from spectra.auth.identity import Actor

    _print_global_maintenance(
        _global_maintenance(database, lambda session, now: turn_off(session, actor=Actor.system("cli"), now=now))
    )


@maintenance_global.command("status")
@database_option
def maintenance_global_status(database: str | None) -> None:
    """Print whether global maintenance is on, its message, end and who started it."""
    from spectra.domain.global_maintenance import current

    _print_global_maintenance(_global_maintenance(database, lambda session, now: current(session, now=now)))


def _global_maintenance(
    database: str | None, act: Callable[[Session, datetime], GlobalMaintenanceStatus]
) -> GlobalMaintenanceStatus:
    """Run `act(session, now)` in one transaction on a database at the current schema (now: the database's
    clock, the one the alerter judges `until` by); a refusal exits 1 with its reason, nothing written."""
    from spectra.domain.global_maintenance import GlobalMaintenanceRefused
    from spectra.store import current_revision, database_url, head_revision, make_engine, redacted, session_factory
    from spectra.store.clock import database_now
    from spectra.store.engine import take_write_lock

    url = database_url(database)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
        if revision != head_revision():
            click.echo(
                f"spectra: database {redacted(url)} is at revision {revision or 'empty'}, expected {head_revision()}: "
                "run `spectra db upgrade`",
                err=True,
            )
            sys.exit(EXIT_INVALID)
        with session_factory(engine)() as session:
            take_write_lock(session)  # it reads before it writes, maybe beside a `spectra run` on SQLite
            try:
                result = act(session, database_now(session))
            except GlobalMaintenanceRefused as refused:
                session.rollback()
                click.echo(f"spectra: {refused}", err=True)
                sys.exit(EXIT_INVALID)
            session.commit()
            return result
    finally:
        engine.dispose()


def _print_global_maintenance(status: GlobalMaintenanceStatus) -> None:
    from spectra.runtime.timefmt import utc_text_seconds

    if not status.on:
        ended = f" (ended {utc_text_seconds(status.ended_at)})" if status.ended_at is not None else ""
        click.echo(f"global maintenance: off{ended}")
        return
    until = utc_text_seconds(status.until) if status.until is not None else "turned off"
    click.echo("global maintenance: on (incidents open, nobody is paged)")
    click.echo(f"message: {status.message}")
    click.echo(f"until: {until}")
    click.echo(f"status pages: {'show the message' if status.show_on_status_pages else 'do not show it'}")
    click.echo(f"started: {utc_text_seconds(status.started_at)} by {status.started_by}")


# --- spectra incidents: a client of /api/v1/incidents --------------------------------------------------


@cli.group()
@click.option(
    "--server", envvar="SPECTRA_URL", metavar="URL", help="The server, e.g. https://spectra.example.com ($SPECTRA_URL)."
)
@click.option(
    "--token",
    envvar="SPECTRA_TOKEN",
    metavar="TOKEN",
    help="An API token ($SPECTRA_TOKEN): read to list, incidents:write to act.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON instead of lines.")
@click.pass_context
def incidents(ctx: click.Context, server: str | None, token: str | None, as_json: bool) -> None:
    """See and answer incidents on a running server (an API client; exit 1 when refused, 69 unreachable)."""
    from spectra.console.incidents.client import IncidentsClient

    if not server:
        raise click.UsageError("give --server URL or set SPECTRA_URL")
    if not token:
        raise click.UsageError("give --token TOKEN or set SPECTRA_TOKEN (an API token: spectra users token ...)")
    ctx.obj = (IncidentsClient(server, token), as_json)


def _incidents_call(ctx: click.Context, work: Callable[[Any], Any]) -> None:
    from spectra.console.incidents.client import ClientError, as_json, line

    client, json_out = ctx.obj
    try:
        result = work(client)
    except ClientError as failed:
        click.echo(f"spectra: {failed.sentence}", err=True)
        sys.exit(failed.code)
    if json_out:
        click.echo(as_json(result))
    elif isinstance(result, list):
        for item in result:
            click.echo(line(item))
        if not result:
            click.echo("no incidents")
    else:
        click.echo(line(result))


@incidents.command("list")
@click.option("--state", type=click.Choice(["open", "acknowledged", "resolved"]), help="Only this state.")
@click.option("--namespace", help="Only this namespace.")
@click.option("--monitor", help="Only this monitor (by name).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="How many.")
@click.pass_context
def incidents_list(
    ctx: click.Context, state: str | None, namespace: str | None, monitor: str | None, limit: int
) -> None:
    """Incidents: open first, then acknowledged, then resolved; newest first."""
    _incidents_call(ctx, lambda c: c.list(state=state, namespace=namespace, monitor=monitor, limit=limit))


@incidents.command("ack")
@click.argument("incident")
@click.pass_context
def incidents_ack(ctx: click.Context, incident: str) -> None:
    """Acknowledge INCIDENT (its code or number): the escalation stops."""
    _incidents_call(ctx, lambda c: c.act(incident, "acknowledge"))


@incidents.command("resolve")
@click.argument("incident")
@click.pass_context
def incidents_resolve(ctx: click.Context, incident: str) -> None:
    """Resolve INCIDENT (its code or number)."""
    _incidents_call(ctx, lambda c: c.act(incident, "resolve"))


@incidents.command("note")
@click.argument("incident")
@click.argument("text")
@click.pass_context
def incidents_note(ctx: click.Context, incident: str, text: str) -> None:
    """Add TEXT to INCIDENT's timeline."""
    _incidents_call(ctx, lambda c: c.act(incident, "notes", {"text": text}))


def main() -> None:
    """Entry point: never show a traceback for bad input; show one for our bugs only on request."""
    try:
        cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except SQLAlchemyError as exc:
        # The driver's message names host and port but never the password.
        reason = getattr(exc, "orig", None) or exc
        click.echo(f"spectra: database error: {reason}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    except Exception as exc:
        if os.environ.get("SPECTRA_DEBUG"):
            traceback.print_exc()
        click.echo(f"spectra: error: {type(exc).__name__}: {exc}", err=True)
        click.echo("(set SPECTRA_DEBUG=1 to see the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
