"""Command line: init, org, user, collection, partner, serve, sync, import, export, audit, observe, hunt, ais, demo. Non-interactive, one clear line per error."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NoReturn

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .config import ConfigError
from .node import Node, NodeError
from .principals import Principal, Role
from .store import ObjectFilter, StoreError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Kuroshio partner node: STIX 2.1 over TAXII 2.1 with releasability enforced at every boundary.")
user_app = typer.Typer(no_args_is_help=True, help="Manage users and API tokens.")
collection_app = typer.Typer(no_args_is_help=True, help="Manage collections and which organisations may use them.")
org_app = typer.Typer(no_args_is_help=True, help="Manage partner organisations: community, clients, country.")
audit_app = typer.Typer(no_args_is_help=True, help="Verify and read the tamper-evident audit log.")
key_app = typer.Typer(no_args_is_help=True, help="The node's signing key.")
partner_app = typer.Typer(no_args_is_help=True, help="Link partner nodes: cards, links, credentials, sync status.")
app.add_typer(user_app, name="user")
app.add_typer(collection_app, name="collection")
app.add_typer(org_app, name="org")
app.add_typer(audit_app, name="audit")
app.add_typer(partner_app, name="partner")
app.add_typer(key_app, name="key")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

HomeArg = Annotated[Path, typer.Argument(help="The node's home directory.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line `error: what, where, what to do` and exit non-zero."""
    err.print("error: ", style="bold red", end="")
    err.print(message, markup=False)
    raise typer.Exit(code)


def _open(home: Path) -> Node:
    try:
        return Node.open(home)
    except (ConfigError, NodeError, StoreError) as exc:
        fail(str(exc))


def _acting_as(node: Node, username: str | None) -> Principal:
    """The principal a command acts as: a named user, or the node operator."""
    if not username:
        return node.operator()
    user = node.store.user(username)
    if user is None:
        fail(f"no user '{username}' on this node")
    return node.store.principal(user)


@app.command()
def init(
    home: HomeArg,
    org: Annotated[str, typer.Option(help="Short name of the organisation running the node, e.g. TWN.")],
    name: Annotated[str | None, typer.Option(help="Display name of the organisation, e.g. Taiwan.")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (default sqlite:///node.db in the home).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port the node serves on (default 8470).")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Create a node CA with server and client certificates "
                                                    "and serve https.")] = False,
    mutual_tls: Annotated[bool, typer.Option("--mutual-tls", help="As --tls, and require client certificates "
                                                                  "from this node's and its partners' CAs.")] = False,
    host: Annotated[list[str] | None, typer.Option(help="Host name or address for the server certificate "
                                                        "(repeatable; default 127.0.0.1 and localhost).")] = None,
) -> None:
    """Create a node home: configuration, organisation identity, signing key, default collections."""
    try:
        node = Node.init(home, org, org_name=name, store_url=store, port=port, tls=tls, mutual_tls=mutual_tls,
                         hosts=host)
    except (NodeError, StoreError, OSError) as exc:
        fail(str(exc))
    cfg = node.config
    node.close()
    out.print(f"Created node {cfg.org} in {cfg.home}", markup=False)
    out.print(f"  identity   {cfg.identity}", markup=False)
    if cfg.tls_cert:
        out.print(f"  tls        {cfg.path(cfg.tls_cert)} (CA {cfg.path('keys/tls/ca.pem')})"
                  + (", client certificates required" if cfg.tls_client_ca else ""), markup=False)
    out.print(f"  API root   /{cfg.default_api_root}/ with collections: shared, reference (custom content allowed)", markup=False)
    out.print(f"  next       kuroshio user add {home} alice --role contributor --password-stdin", markup=False)


@user_app.command("add")
def user_add(
    home: HomeArg,
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="reader, contributor or admin.")] = "reader",
    org: Annotated[str | None, typer.Option(help="Organisation (created with its identity on first use); "
                                                 "default: the node's own.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
    token: Annotated[bool, typer.Option("--token", help="Create an API token and print it (shown once).")] = False,
) -> None:
    """Add a user (and their organisation if new); optionally set a password and issue an API token."""
    try:
        role_value = Role.parse(role)
    except ValueError as exc:
        fail(str(exc))
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input: pipe it in, e.g. `echo \"$PW\" | kuroshio user add ... --password-stdin`")
    if not password and not token:
        fail("the user would have no way to log in: give --password-stdin and/or --token")
    node = _open(home)
    try:
        user, shown = node.add_user(username, role_value, org=org, password=password, token=token)
        org_name = org or node.config.org
    except (NodeError, StoreError, ValueError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Added {role_value.label} {user.username} of {org_name}", markup=False)
    if shown:
        # the token alone on stdout's last line so scripts can capture it
        print(shown)


@collection_app.command("add")
def collection_add(
    home: HomeArg,
    alias: Annotated[str, typer.Argument(help="Short name used in URLs and commands.")],
    title: Annotated[str | None, typer.Option(help="Human-readable title.")] = None,
    description: Annotated[str, typer.Option(help="What the collection holds.")] = "",
    allow_custom: Annotated[bool, typer.Option("--allow-custom", help="Accept custom STIX content (x- types, "
                                                                      "custom properties).")] = False,
    api_root: Annotated[str | None, typer.Option(help="API root (default: the node's first).")] = None,
    default_marking: Annotated[str, typer.Option(help="TLP level of objects that arrive without a marking: "
                                                      "clear, green, amber, amber+strict or red.")] = "amber",
    public: Annotated[bool, typer.Option("--public", help="Readable without credentials (only what TLP:CLEAR "
                                                          "allows everyone to see).")] = False,
    exercise: Annotated[bool, typer.Option("--exercise", help="An exercise collection: the only place "
                                                              "EXERCISE-marked objects are accepted.")] = False,
) -> None:
    """Add a collection; the node's own organisation may read and write it."""
    from .markings.definitions import TLP2

    if default_marking.lower() not in TLP2:
        fail(f"--default-marking '{default_marking}' must be one of {', '.join(TLP2)}")
    node = _open(home)
    try:
        root = api_root or node.config.default_api_root
        if node.config.api_root(root) is None:
            fail(f"no API root '{root}' in {home}/node.toml")
        coll = node.store.add_collection(root, alias, title or alias, description, allow_custom=allow_custom,
                                         default_marking=TLP2[default_marking.lower()], public=public,
                                         exercise=exercise)
        home_org = node.store.organisation(node.config.org)
        assert home_org is not None
        node.store.grant(coll.id, home_org.id, can_read=True, can_write=True)
    except StoreError as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Added collection {alias} ({coll.id}) in API root {root}", markup=False)


@collection_app.command("grant")
def collection_grant(
    home: HomeArg,
    alias: Annotated[str, typer.Argument(help="Collection alias or id.")],
    org: Annotated[str, typer.Argument(help="Organisation name.")],
    read: Annotated[bool, typer.Option("--read/--no-read", help="May read.")] = True,
    write: Annotated[bool, typer.Option("--write/--no-write", help="May write (contributors and admins).")] = False,
    api_root: Annotated[str | None, typer.Option(help="API root (default: the node's first).")] = None,
) -> None:
    """Allow an organisation to read and/or write a collection."""
    node = _open(home)
    try:
        coll = node.collection(api_root or node.config.default_api_root, alias)
        organisation = node.store.organisation(org)
        if organisation is None:
            known = ", ".join(o.name for o in node.store.organisations())
            fail(f"no organisation '{org}' (known: {known}); `kuroshio user add {home} USER --org {org}` creates it")
        node.store.grant(coll.id, organisation.id, can_read=read, can_write=write)
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"{org} may {'read' if read else 'not read'} and {'write' if write else 'not write'} {coll.alias}",
              highlight=False)


@collection_app.command("list")
def collection_list(home: HomeArg) -> None:
    """List collections and object counts."""
    node = _open(home)
    try:
        operator = node.operator()
        table = Table("API root", "alias", "id", "custom", "objects", "title")
        for c in node.store.collections():
            count = node.store.count(operator, c) if node.store.access(c.id, operator.org.id) else "-"
            table.add_row(c.api_root, c.alias, c.id, "yes" if c.allow_custom else "no", str(count), c.title)
    finally:
        node.close()
    out.print(table)


@app.command()
def serve(
    home: HomeArg,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default from node.toml).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default from node.toml).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    sync: Annotated[bool, typer.Option("--sync/--no-sync", help="Pull from and push to partners while serving "
                                                                "(--no-sync: an API worker beside one that syncs).")] = True,
) -> None:
    """Serve the node's TAXII 2.1 API until interrupted, syncing with partner nodes."""
    import uvicorn

    from .federation.service import FederationService
    from .taxii import create_app
    from .tls import server_config, uvicorn_tls

    node = _open(home)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bind_host = host or node.config.host
    bind_port = port or node.config.port
    federation = FederationService(node)
    tls = uvicorn_tls(node.config)
    scheme = "https" if tls else "http"
    err.print(f"Kuroshio node {node.config.org} serving TAXII 2.1 at {scheme}://{bind_host}:{bind_port}/taxii2/"
              + (" (client certificates required)" if "ssl_ca_certs" in tls else ""), highlight=False)
    try:
        if sync:
            federation.start()
        server = uvicorn.Server(server_config(node, create_app(node), bind_host, bind_port, log_level=log_level,
                                              access_log=False, server_header=False))
        # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again: with the default
        # SIGTERM action that would end the process before the finally below stops the federation threads
        # and the ingest worker processes (an init system stops services with SIGTERM)
        signal.signal(signal.SIGTERM, _stop_serving)
        try:
            server.run()
        except (KeyboardInterrupt, _Stopped):
            pass  # uvicorn has shut down gracefully and re-raised the signal: a normal stop
    finally:
        federation.stop()
        node.close()


class _Stopped(Exception):
    """SIGTERM reached `kuroshio serve` (after uvicorn's graceful shutdown)."""


def _stop_serving(signum: int, frame: object) -> None:
    raise _Stopped


def _progress(unit: str = "objects") -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TextColumn("{task.fields[objects]:,} " + unit), TimeRemainingColumn(), console=err,
                    transient=False)


class _CountingReader:
    """A binary reader that reports how many bytes were read (drives the progress bar)."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], object]) -> None:
        self.raw = raw
        self.report = report

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.report(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        for line in self.raw:
            self.report(len(line))
            yield line


def _batched(items: Iterator[object], size: int) -> Iterator[list[object]]:
    batch: list[object] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@org_app.command("add")
def org_add(
    home: HomeArg,
    name: Annotated[str, typer.Argument(help="Short name of the organisation, e.g. JPN.")],
    partner: Annotated[bool, typer.Option("--partner", help="Member of the node's community: receives "
                                                            "TLP:GREEN.")] = False,
    client_of: Annotated[str | None, typer.Option(help="The organisation it is a client of: receives that "
                                                       "organisation's TLP:AMBER on need to know.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country code, e.g. JP.")] = None,
) -> None:
    """Add an organisation (with its STIX identity)."""
    node = _open(home)
    try:
        if node.store.organisation(name) is not None:
            fail(f"organisation '{name}' already exists: change it with `kuroshio org set {home} {name} ...`")
        org = node.ensure_organisation(name, partner=partner, client_of=client_of, country=country)
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Added organisation {org.name} ({org.identity_id})", markup=False)


@org_app.command("set")
def org_set(
    home: HomeArg,
    name: Annotated[str, typer.Argument(help="Organisation name.")],
    partner: Annotated[bool | None, typer.Option("--partner/--no-partner", help="Join or leave the community.")] = None,
    client_of: Annotated[str | None, typer.Option(help="Patron organisation ('' for none).")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country code.")] = None,
) -> None:
    """Change an organisation's community membership, patron or country. Audiences of objects already
    stored keep the organisations they named; TLP:GREEN follows the community as it is when read."""
    node = _open(home)
    try:
        org = node.set_organisation(name, partner=partner, client_of=client_of, country=country)
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"{org.name}: community {org.community or '-'}, client of {org.client_of or '-'}, "
              f"country {org.country or '-'}", markup=False)


@org_app.command("list")
def org_list(home: HomeArg) -> None:
    """List organisations."""
    node = _open(home)
    try:
        orgs = node.store.organisations()
        names = {o.id: o.name for o in orgs}
        table = Table("name", "identity", "community", "client of", "country", "home")
        for o in orgs:
            table.add_row(o.name, o.identity_id, o.community or "-", names.get(o.client_of or 0, "-"),
                          o.country or "-", "yes" if o.home else "")
    finally:
        node.close()
    out.print(table)


@key_app.command("rotate")
def key_rotate(home: HomeArg) -> None:
    """Replace the node's signing key; what the old key signed stays verifiable. Send partners the new card."""
    node = _open(home)
    try:
        kid = node.rotate_key()
    except (NodeError, ValueError, OSError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"New signing key {kid}. Partners verify what it signs once they have the new card: "
              f"`kuroshio partner card {home}`, then `kuroshio partner add DIR --card FILE` at each partner.",
              markup=False)


@partner_app.command("card")
def partner_card(
    home: HomeArg,
    url: Annotated[str | None, typer.Option(help="The discovery URL partners reach this node at (default: "
                                                 "from node.toml's server settings).")] = None,
) -> None:
    """Print this node's partner card (JSON): give it to a partner's operator for `kuroshio partner add`."""
    from .federation import links

    node = _open(home)
    try:
        out.print(orjson.dumps(links.card(node, url=url), option=orjson.OPT_INDENT_2).decode(), markup=False)
    except NodeError as exc:
        fail(str(exc))
    finally:
        node.close()


@partner_app.command("add")
def partner_add(
    home: HomeArg,
    card: Annotated[Path, typer.Option(help="The partner's card, from its `kuroshio partner card`.")],
    direction: Annotated[str, typer.Option(help="pull, push, both or none (pinned keys only, to verify "
                                                "relayed objects).")] = "both",
    collections: Annotated[str, typer.Option(help="Comma-separated aliases of the collections exchanged.")] = "shared",
    url: Annotated[str | None, typer.Option(help="The partner's discovery URL, if not the card's.")] = None,
    token: Annotated[str | None, typer.Option(help="The token the partner's operator gave for this node.")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between pulls.")] = 5.0,
    ca_file: Annotated[str, typer.Option(help="CA certificate that signed the partner's server certificate.")] = "",
    client_cert: Annotated[str, typer.Option(help="Client certificate for mutual TLS at the partner.")] = "",
    client_key: Annotated[str, typer.Option(help="Key of the client certificate.")] = "",
) -> None:
    """Link a partner node (or update its link); prints the token its node uses here, once."""
    from .federation import links

    node = _open(home)
    try:
        partner = links.read_card(card)
        shown = links.add_partner(node, partner, direction=direction,
                                  collections=[c.strip() for c in collections.split(",") if c.strip()],
                                  url=url, token=token, poll_interval=poll_interval, ca_file=ca_file,
                                  client_cert=client_cert, client_key=client_key)
    except (NodeError, StoreError, ConfigError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Linked partner {partner.org} ({partner.identity['id']}), direction {direction}.", markup=False)
    out.print(f"Token for {partner.org}'s node (shown once; its operator runs `kuroshio partner credentials "
              f"DIR {node.config.org} --token ...`):", markup=False)
    out.print(shown, markup=False)


@partner_app.command("credentials")
def partner_credentials(
    home: HomeArg,
    org: Annotated[str, typer.Argument(help="The partner organisation, e.g. JPN.")],
    token: Annotated[str, typer.Option(help="The token the partner's `kuroshio partner add` printed.")],
) -> None:
    """Store the token this node signs in with at a partner's node (file mode 0600)."""
    from .federation import links

    node = _open(home)
    try:
        links.set_credentials(node, org, token)
    except NodeError as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Stored the credentials for {org}.", markup=False)


@partner_app.command("list")
def partner_list(home: HomeArg) -> None:
    """List partner links."""
    node = _open(home)
    try:
        table = Table("partner", "identity", "url", "direction", "collections", "keys")
        for p in node.config.partners:
            table.add_row(p.org, p.identity, p.url or "-", p.direction, ",".join(p.collections), str(len(p.keys)))
    finally:
        node.close()
    out.print(table)


@partner_app.command("remove")
def partner_remove(home: HomeArg, org: Annotated[str, typer.Argument(help="The partner organisation.")]) -> None:
    """Unlink a partner: stop syncing and revoke its node's sign-in (its pinned keys stay, to verify what it sent)."""
    from .federation import links

    node = _open(home)
    try:
        links.remove_partner(node, org)
    except NodeError as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Unlinked partner {org}.", markup=False)


@partner_app.command("status")
def partner_status(
    home: HomeArg,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Per partner: last success, lag, backlog, errors and rejected objects."""
    from .federation import links

    node = _open(home)
    try:
        rows = links.status(node)
    finally:
        node.close()
    if as_json:
        for r in rows:
            out.print(orjson.dumps(r).decode(), markup=False)
        return
    table = Table("partner", "direction", "last success", "lag s", "backlog", "received", "rejected", "errors",
                  "last error")
    for r in rows:
        table.add_row(r["org"], r["direction"], r.get("last_success", "never"), str(r.get("lag_s", "-")),
                      str(r.get("backlog", "-")), str(r.get("received", 0)), str(r.get("rejected", 0)),
                      str(r.get("errors", 0)), (r.get("last_error") or "")[:80])
    out.print(table)


@app.command()
def sync(
    home: HomeArg,
    partner: Annotated[str | None, typer.Option(help="Only this partner (default: every linked partner).")] = None,
    push_too: Annotated[bool, typer.Option("--push/--no-push", help="Also push what is new here to partners "
                                                                    "whose link pushes.")] = True,
    pull_too: Annotated[bool, typer.Option("--pull/--no-pull", help="Pull from partners whose link pulls.")] = True,
    page: Annotated[int, typer.Option(help="Objects per request.", min=1, max=10000)] = 1000,
) -> None:
    """Sync with partner nodes once, now (the running server does this continuously)."""
    from .federation.pull import PartnerError, pull, record_health
    from .federation.push import push

    node = _open(home)
    failed = False
    try:
        targets = [p for p in node.config.partners if (p.pulls or p.pushes) and (partner is None or p.org == partner)]
        if not targets:
            fail(f"no linked partner{' ' + partner if partner else ''}: see `kuroshio partner list {home}`")
        for link in targets:
            try:
                if pull_too and link.pulls:
                    r = pull(node, link, page=page)
                    out.print(f"{link.org}: pulled {r.received}, stored {r.stored}, rejected {r.rejected} "
                              f"in {r.pages} pages", markup=False)
                    for why in r.rejections[:5]:
                        out.print(f"  rejected: {why}", markup=False)
                if push_too and link.pushes:
                    pr = push(node, link, page=page)
                    record_health(node, link.org, pushed=pr)
                    out.print(f"{link.org}: pushed {pr.sent}, accepted {pr.accepted}, rejected {pr.rejected} "
                              f"in {pr.envelopes} envelopes", markup=False)
            except (PartnerError, NodeError) as exc:
                err.print(f"{link.org}: {exc}", markup=False)
                failed = True
    finally:
        node.close()
    if failed:
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(home: HomeArg) -> None:
    """Check the audit chain: any edited, deleted, inserted or reordered record, or a cut tail, is reported."""
    from . import audit

    node = _open(home)
    try:
        try:
            head = node.audit_head.read()
        except ValueError as exc:
            fail(str(exc))
        count = 0

        def rows() -> Iterator[tuple[int, str, bytes, str, str]]:
            nonlocal count
            for r in node.store.audit_rows():
                count += 1
                yield r

        findings = audit.verify(rows(), head)
    finally:
        node.close()
    if findings:
        for f in findings[:50]:
            err.print(f"  {f}", markup=False)
        fail(f"the audit log of {home} has been tampered with: {len(findings)} problem(s), first at "
             f"{findings[0]}", code=2)
    out.print(f"audit log intact: {count} records" + (f", head {head[0]} signed" if head else ", no signed head yet"),
              markup=False)


@audit_app.command("show")
def audit_show(
    home: HomeArg,
    user: Annotated[str | None, typer.Option(help="Only records of this user.")] = None,
    object_: Annotated[str | None, typer.Option("--object", help="Only records naming this object id.")] = None,
    partner: Annotated[str | None, typer.Option(help="Only records of this organisation or partner.")] = None,
    since: Annotated[str | None, typer.Option(help="Only records from this timestamp on.")] = None,
    as_: Annotated[str | None, typer.Option("--as", help="Read as this administrator (default: the node "
                                                         "operator); hidden objects stay hidden.")] = None,
) -> None:
    """Print audit records as JSON lines (seq, time, record), as an administrator may see them."""
    from .stix import timestamps

    if since is not None and timestamps.check(since) is not None:
        fail(f"--since '{since}' is not a timestamp of the form YYYY-MM-DDTHH:mm:ss[.s+]Z")
    node = _open(home)
    try:
        viewer = _acting_as(node, as_)
        for seq, ts, rec in node.store.audit_view(viewer, user=user, object_id=object_, partner=partner,
                                                   since=since):
            sys.stdout.write(orjson.dumps({"seq": seq, "ts": ts, **rec}).decode() + "\n")
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()


@app.command("import")
def import_(
    home: HomeArg,
    files: Annotated[list[Path], typer.Argument(help="Bundles or envelopes (JSON, optionally .gz), any size.")],
    collection: Annotated[str, typer.Option(help="Collection alias or id to store into.")],
    api_root: Annotated[str | None, typer.Option(help="API root (default: the node's first).")] = None,
    batch: Annotated[int, typer.Option(help="Objects per transaction.")] = 1000,
) -> None:
    """Import STIX bundles or TAXII envelopes as the node's own organisation, with a progress bar."""
    import gzip

    from .stix.stream import StreamError, iter_objects

    for f in files:
        if not f.is_file():
            fail(f"{f} is not a file")
    node = _open(home)
    stored = present = rejected = 0
    reasons: list[str] = []
    try:
        coll = node.collection(api_root or node.config.default_api_root, collection)
        operator = node.operator()

        def objects_of(f: Path, report: Callable[[int], object]) -> Iterator[object]:
            with open(f, "rb") as raw:
                counted = _CountingReader(raw, report)
                yield from iter_objects(gzip.GzipFile(fileobj=counted) if f.suffix == ".gz" else counted)

        def is_definition(o: object) -> bool:
            return isinstance(o, dict) and o.get("type") == "marking-definition"

        with _progress() as progress:
            for f in files:
                task = progress.add_task(f.name, total=2 * f.stat().st_size, objects=0)
                count = 0

                def advance(n: int, t: Any = task) -> None:
                    progress.update(t, advance=n)

                try:
                    # marking definitions first, in a quick pass: an object whose marking the node does
                    # not know is refused, and a bundle may define its markings anywhere in the file
                    definitions = [o for o in objects_of(f, advance) if is_definition(o)]
                    rest = (o for o in objects_of(f, advance) if not is_definition(o))
                    for chunk in itertools.chain([definitions] if definitions else [], _batched(rest, batch)):
                        record = node.ingest(operator, coll, chunk)
                        details = orjson.loads(record.details)
                        for s in details["successes"]:
                            if s.get("message") == "already stored":
                                present += 1
                            else:
                                stored += 1
                        for failure in details["failures"]:
                            rejected += 1
                            if len(reasons) < 20:
                                reasons.append(f"{f.name}: {failure['message']}")
                        count += len(chunk)
                        progress.update(task, objects=count)
                except (StreamError, OSError, EOFError) as exc:
                    fail(f"{f}: {exc}")
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()
    out.print(f"Imported into {coll.alias}: {stored} stored, {present} already present, {rejected} rejected",
              highlight=False)
    if rejected:
        for r in reasons:
            err.print(f"  rejected: {r}", markup=False)
        if rejected > len(reasons):
            err.print(f"  ... and {rejected - len(reasons)} more")
        raise typer.Exit(1)


@app.command()
def export(
    home: HomeArg,
    collection: Annotated[str, typer.Option(help="Collection alias or id.")],
    type_: Annotated[list[str] | None, typer.Option("--type", help="Only objects of this type (repeatable).")] = None,
    id_: Annotated[list[str] | None, typer.Option("--id", help="Only this object id (repeatable).")] = None,
    version: Annotated[str, typer.Option(help="last, first, all, or a timestamp.")] = "last",
    added_after: Annotated[str | None, typer.Option(help="Only objects added after this timestamp.")] = None,
    api_root: Annotated[str | None, typer.Option(help="API root (default: the node's first).")] = None,
    as_: Annotated[str | None, typer.Option("--as", help="Export what this user may see, as they would "
                                                         "receive it (default: the node operator).")] = None,
) -> None:
    """Write a STIX 2.1 bundle of a collection to standard output (releasability applies)."""
    from .stix import timestamps

    if added_after is not None and timestamps.check(added_after) is not None:
        fail(f"--added-after '{added_after}' is not a timestamp of the form YYYY-MM-DDTHH:mm:ss[.s+]Z")
    versions = [v if v in ("first", "last", "all") else timestamps.key(v) for v in version.split(",")]
    for v in version.split(","):
        if v not in ("first", "last", "all") and timestamps.check(v) is not None:
            fail(f"--version '{v}' must be last, first, all or a timestamp")
    node = _open(home)
    stdout = sys.stdout.buffer
    try:
        coll = node.collection(api_root or node.config.default_api_root, collection)
        operator = _acting_as(node, as_)
        flt = ObjectFilter(added_after=timestamps.to_micros(added_after) if added_after else None, ids=id_ or None,
                           types=type_ or None, versions=versions, limit=5000)
        stdout.write(b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":[')
        first = True
        while True:
            page = node.store.query(operator, coll, flt, way="export")
            for row in page.rows:
                if row.raw is None:
                    continue
                stdout.write(row.raw if first else b"," + row.raw)
                first = False
            if not page.more:
                break
            flt.cursor = page.next_cursor
        stdout.write(b"]}\n")
        stdout.flush()
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()


@app.command()
def demo(
    home: Annotated[Path, typer.Option(help="Where the demo nodes live: DIR/TWN and DIR/JPN (re-used if "
                                            "present).")] = Path(".demo"),
    port: Annotated[int, typer.Option(help="Port of TWN's node; JPN's is the next one.")] = 8470,
    data: Annotated[Path | None, typer.Option(help="Folder of real third-party data (default: ../shared/data "
                                                   "or $KUROSHIO_DATA).")] = None,
) -> None:
    """Start two linked partner nodes (TWN, JPN) with demo data, show what each receives, serve until Ctrl-C."""
    from .demo import run_demo

    data_dir = data or Path(os.environ.get("KUROSHIO_DATA", "../shared/data"))
    try:
        run_demo(home, port, data_dir, out)
    except (NodeError, StoreError, ConfigError) as exc:
        fail(str(exc))



# --- correlation: sensors' logs against the node's indicators -----------------------------------------


@contextlib.contextmanager
def _interruptible() -> Iterator[Any]:
    """An event that Ctrl-C or SIGTERM sets (instead of raising), for commands that read until told to
    stop; the handlers in place before come back afterwards."""
    import threading

    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, frame: stop.set()) for s in signals]
    try:
        yield stop
    finally:
        stop.set()
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, handler)


def _correlator(node: Node, sensor: str | None) -> Any:
    from .correlate.service import Correlator
    from .correlate.warninglists import WarningListError

    try:
        correlator = Correlator(node, sensor=sensor)
    except (ValueError, WarningListError) as exc:
        fail(str(exc))
    correlator.refresh()
    return correlator


def _print_counts(title: str, rows: Iterable[tuple[str, int]]) -> None:
    """A summary table of what a command did: one count per row."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    for label, n in rows:
        table.add_row(label, f"{n:,}")
    out.print(table)


def _correlation_summary(correlator: Any, readings: dict[str, Any]) -> None:
    counts = correlator.counts
    rows = [("indicators indexed", len(correlator.index)), ("observations", counts["observations"]),
            ("matches", counts["matches"]), ("sightings published", counts["sightings-published"])]
    rows += [(f"suppressed by warning list '{key[11:]}'", n) for key, n in sorted(counts.items())
             if key.startswith("suppressed:")]
    if counts["sightings-refused"]:
        rows.append(("sightings refused by the store", counts["sightings-refused"]))
    rows += [(f"{name}: skipped ({reason})", n) for name, reading in readings.items()
             for reason, n in sorted(reading.skipped.items())]
    _print_counts("Correlation", rows)


@app.command()
def observe(
    home: HomeArg,
    files: Annotated[list[Path], typer.Argument(help="Sensor logs: Suricata EVE JSON or Zeek (JSON or TSV), .gz too.")],
    fmt: Annotated[str, typer.Option("--format", help="eve (Suricata) or zeek.")] = "eve",
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading as the sensor writes (rotation included) "
                                         "until interrupted; new indicators are hunted in the background.")] = False,
    sensor: Annotated[str | None, typer.Option(help="The organisation whose sensors wrote the logs "
                                               "(default: the node's own).")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the observations for retro-hunts.")] = True,
) -> None:
    """Match sensor logs against the node's indicators and publish the sightings (docs/correlation.md)."""
    import gzip

    from .correlate.observations import Reading, read_eve, read_zeek

    if fmt not in ("eve", "zeek"):
        fail(f"--format must be eve or zeek, not '{fmt}'")
    for f in files:
        if not follow and not f.is_file():
            fail(f"{f} is not a file")
    node = _open(home)
    correlator = _correlator(node, sensor)
    readings: dict[str, Reading] = {}

    def reader(lines: Any, name: str) -> Any:
        reading = readings.setdefault(name, Reading())
        return read_eve(lines, reading) if fmt == "eve" else read_zeek(lines, reading, path_hint=name)

    try:
        if not follow:
            import time

            caught = correlator.catch_up(progress=_hunt_report(len(correlator.unhunted())))
            if caught:
                err.print(f"retro-hunt of indicators new since the last run: {caught:,} matches", markup=False)
            last_flush = time.monotonic()
            with _progress("observations") as progress:
                for f in files:
                    task = progress.add_task(f.name, total=f.stat().st_size, objects=0)
                    with open(f, "rb") as raw:
                        counted = _CountingReader(raw, lambda n, t=task: progress.update(t, advance=n))
                        stream = gzip.GzipFile(fileobj=counted) if f.suffix == ".gz" else counted
                        for batch in _batched(reader(stream, f.name), 1000):
                            correlator.observe(batch, keep=keep)
                            progress.update(task, objects=correlator.counts["observations"])
                            if time.monotonic() - last_flush >= correlator.cfg.flush_seconds:
                                correlator.flush()  # a new version of a sighting every few seconds, not per batch
                                last_flush = time.monotonic()
            correlator.flush()
        else:
            _follow_logs(correlator, files, reader, keep)
    except (NodeError, StoreError, OSError) as exc:
        fail(str(exc))
    finally:
        correlator.close()
        node.close()
    _correlation_summary(correlator, readings)


def _follow_logs(correlator: Any, files: list[Path], reader: Callable[[Any, str], Any], keep: bool) -> None:
    """Tail the logs (one thread each), match, publish every flush interval, hunt new indicators."""
    with _interruptible() as stop:
        _follow_until(correlator, files, reader, keep, stop)


def _follow_until(correlator: Any, files: list[Path], reader: Callable[[Any, str], Any], keep: bool, stop: Any) -> None:
    import queue
    import threading
    import time

    from .correlate.tail import follow as tail

    observations: queue.Queue[Any] = queue.Queue(maxsize=10_000)

    def pump(path: Path) -> None:
        for obs in reader(tail(path, stop), path.name):
            while not stop.is_set():
                try:
                    observations.put(obs, timeout=0.5)
                    break
                except queue.Full:
                    continue

    threads = [threading.Thread(target=pump, args=(f,), daemon=True, name=f"tail {f.name}") for f in files]
    for t in threads:
        t.start()
    hunts: list[threading.Thread] = []

    def start_hunt(ids: list[str] | None) -> None:
        until = correlator.keep_pending()  # later observations meet them in the live index
        todo = correlator.unhunted(ids)
        if todo:
            hunt = threading.Thread(target=_background_hunt, args=(correlator, todo, until), daemon=True)
            hunt.start()
            hunts.append(hunt)

    start_hunt(None)
    interval = correlator.cfg.flush_seconds
    last_flush = last_refresh = time.monotonic()
    err.print(f"following {', '.join(str(f) for f in files)} ({len(correlator.index):,} indicators); "
              "Ctrl-C to stop", markup=False)
    try:
        while not stop.is_set():
            batch = []
            try:
                batch.append(observations.get(timeout=0.25))
                while len(batch) < 1000:
                    batch.append(observations.get_nowait())
            except queue.Empty:
                pass
            if batch:
                correlator.observe(batch, keep=keep)
            now = time.monotonic()
            if now - last_refresh >= interval:
                last_refresh = now
                fresh = correlator.refresh()
                if fresh:
                    start_hunt(fresh)
            if now - last_flush >= interval:
                last_flush = now
                published = correlator.flush()
                c = correlator.counts
                err.print(f"{c['observations']:,} observations, {c['matches']:,} matches, "
                          f"{c['sightings-published']:,} sightings published (+{published})", markup=False)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2)
        for h in hunts:
            h.join(timeout=30)
        while True:
            try:
                batch = [observations.get_nowait()]
            except queue.Empty:
                break
            correlator.observe(batch, keep=keep)
        correlator.flush()


def _hunt_report(n: int) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        err.print(f"retro-hunt of {n:,} new indicator(s): {done:,}/{total:,} kept observations", markup=False)

    return progress


def _background_hunt(correlator: Any, indicator_ids: list[str], until: int) -> None:
    hits = correlator.hunt(indicator_ids, until_n=until, progress=_hunt_report(len(indicator_ids)))
    err.print(f"retro-hunt of {len(indicator_ids):,} new indicator(s) done: {hits:,} matches", markup=False)


@app.command()
def hunt(
    home: HomeArg,
    days: Annotated[float | None, typer.Option(help="How far back (default: correlate.hunt_days of node.toml).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Hunt every indicator again, not only those new or changed "
                                        "since their last hunt (their earlier matches are counted again).")] = False,
) -> None:
    """Match indicators against the observations kept from the last days; publish the sightings.

    By default only indicators not yet hunted with their current pattern (new or changed)."""
    node = _open(home)
    correlator = _correlator(node, None)
    try:
        until = correlator.keep_pending()
        todo = list(correlator.facts) if every else correlator.unhunted()
        with Progress(TextColumn(f"retro-hunt of {len(todo):,} indicator(s)"), BarColumn(),
                      TextColumn("{task.completed:,}/{task.total:,} observations"), TimeRemainingColumn(),
                      console=err) as progress:
            task = progress.add_task("hunt", total=correlator.history.count(until_n=until) or 1)
            if todo:
                correlator.hunt(todo, days=days, until_n=until,
                                progress=lambda done, total: progress.update(task, completed=done, total=total))
        correlator.flush()
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        correlator.close()
        node.close()
    _correlation_summary(correlator, {})



# --- the maritime picture: AIS in, events out -----------------------------------------------------------

ais_app = typer.Typer(no_args_is_help=True, help="The shared maritime picture: AIS ingest, zones, events.")
app.add_typer(ais_app, name="ais")


def _ais_lines(source: str, stop: Any) -> Iterator[bytes]:
    """Lines from a file (.gz too), a TCP feed (tcp://host:port, reconnecting) or UDP (udp://[host]:port)."""
    import gzip
    import socket

    if source.startswith("tcp://"):
        host, _, port = source[6:].rpartition(":")
        while not stop.is_set():
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5) as conn:
                    conn.settimeout(1.0)
                    buf = b""
                    while not stop.is_set():
                        try:
                            chunk = conn.recv(65536)
                        except TimeoutError:
                            continue
                        if not chunk:
                            break
                        *lines, buf = (buf + chunk).split(b"\n")
                        yield from lines
            except OSError as exc:
                err.print(f"{source}: {exc.strerror or exc}; reconnecting in 2 s", markup=False)
                stop.wait(2.0)
        return
    if source.startswith("udp://"):
        host, _, port = source[6:].rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host or "0.0.0.0", int(port)))
            err.print(f"{source}: listening", markup=False)
            sock.settimeout(0.5)
            while not stop.is_set():
                try:
                    data, _ = sock.recvfrom(65536)
                except TimeoutError:
                    continue
                yield from data.splitlines()
        return
    path = Path(source)
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fp:
        for line in fp:
            if stop.is_set():
                return
            yield line


@ais_app.command("ingest")
def ais_ingest(
    home: HomeArg,
    sources: Annotated[list[str], typer.Argument(help="NMEA files (.gz too), tcp://host:port, udp://[host]:port.")],
    replay_speed: Annotated[float, typer.Option(help="Replay files at N times the recorded pace (0: at once).")] = 0.0,
    land: Annotated[Path | None, typer.Option(help="GeoJSON land polygons (default: maritime.land of node.toml).")] = None,
) -> None:
    """Decode AIS, keep the tracks, run the detectors and publish the events (docs/maritime.md)."""
    from .maritime.geo import LandMask
    from .maritime.service import MaritimeService

    for src in sources:
        if not src.startswith(("tcp://", "udp://")) and not Path(src).is_file():
            fail(f"{src} is not a file, tcp://host:port or udp://[host]:port")
    node = _open(home)
    try:
        mask = LandMask.from_geojson(land) if land is not None else None
        svc = MaritimeService(node, land=mask)
    except (ValueError, OSError) as exc:
        node.close()
        fail(str(exc))
    try:
        with _interruptible() as stop:
            _ingest_ais(svc, sources, replay_speed, node.config.maritime.publish_seconds, stop)
    except (NodeError, StoreError, RuntimeError) as exc:
        fail(str(exc))
    finally:
        svc.close()
        node.close()
    st = svc.stats
    _print_counts("AIS ingest", [
        ("lines", st.lines), ("messages", st.messages), ("positions", st.positions),
        ("vessels", len(svc.picture.vessels)), *((f"events: {kind}", n) for kind, n in sorted(st.events.items())),
        ("objects published", st.published), *((f"skipped ({reason})", n) for reason, n in sorted(st.skipped.items())),
    ])


def _ingest_ais(svc: Any, sources: list[str], replay_speed: float, publish_seconds: float, stop: Any) -> None:
    """Read every source (one thread each) into the maritime service until they end or `stop` is set,
    pacing replays, publishing every `publish_seconds`, with a live display."""
    import queue
    import threading
    import time

    from rich.live import Live

    lines: queue.Queue[Any] = queue.Queue(maxsize=50_000)
    done = object()

    def pump(src: str) -> None:
        try:
            for line in _ais_lines(src, stop):
                lines.put((src, line))
        except OSError as exc:
            err.print(f"{src}: {exc}", markup=False)
        lines.put((src, done))

    threads = [threading.Thread(target=pump, args=(src,), daemon=True) for src in sources]
    for t in threads:
        t.start()
    open_sources = len(sources)
    started = last_publish = time.monotonic()
    clock0: float | None = None
    wall0 = started

    def status() -> Table:
        st = svc.stats
        elapsed = max(time.monotonic() - started, 1e-6)
        table = Table(show_header=False, box=None)
        table.add_row("messages", f"{st.messages:,} ({st.messages / elapsed:,.0f}/s)")
        table.add_row("vessels", f"{len(svc.picture.vessels):,}")
        table.add_row("events", ", ".join(f"{k} {n:,}" for k, n in sorted(st.events.items())) or "none")
        table.add_row("published", f"{st.published:,} objects")
        return table

    with Live(status(), console=err, refresh_per_second=4, transient=True) as live:
        while open_sources and not stop.is_set():
            try:
                src, line = lines.get(timeout=0.25)
            except queue.Empty:
                src, line = None, None
            if line is done:
                open_sources -= 1
            elif line is not None:
                batches: dict[str, list[bytes]] = {src: [line]}
                for _ in range(0 if replay_speed > 0 else 500):  # replays go a line at a time
                    try:
                        src2, line2 = lines.get_nowait()
                    except queue.Empty:
                        break
                    if line2 is done:
                        open_sources -= 1
                        continue
                    batches.setdefault(src2, []).append(line2)
                for src2, batch in batches.items():
                    svc.feed(batch, src2)
                if replay_speed > 0 and svc.picture.clock:
                    if clock0 is None:
                        clock0, wall0 = svc.picture.clock, time.monotonic()
                    ahead = (svc.picture.clock - clock0) / replay_speed - (time.monotonic() - wall0)
                    if ahead > 0:
                        stop.wait(min(ahead, 5.0))
            now = time.monotonic()
            if now - last_publish >= publish_seconds:
                last_publish = now
                svc.publish()
            live.update(status())
    svc.close_readers()
    svc.publish()


@ais_app.command("zones")
def ais_zones(
    home: HomeArg,
    action: Annotated[str, typer.Argument(help="add, list or remove.")],
    name: Annotated[str | None, typer.Argument(help="The zone's name (add, remove).")] = None,
    geojson: Annotated[Path | None, typer.Argument(help="add: GeoJSON, a polygon, a point or a line (a gate), "
                                                   "or features.")] = None,
    buffer_nm: Annotated[float, typer.Option(help="Grow the shape by this many nautical miles (12: territorial sea).")] = 0.0,
    gate: Annotated[bool, typer.Option(help="A line whose crossings are transits (default for lines without a buffer).")] = False,
) -> None:
    """Areas (entry, exit, dwell) and gate lines (transits) the maritime picture watches."""
    if action == "list":
        _zones_list(home)
    elif action == "add":
        if name is None or geojson is None:
            fail("zones add needs a NAME and a GeoJSON file")
        _zones_add(home, name, geojson, buffer_nm, gate)
    elif action == "remove":
        if name is None:
            fail("zones remove needs the zone's NAME")
        _zones_remove(home, name)
    else:
        fail(f"zones: '{action}' is not add, list or remove")


def _zones_add(home: Path, name: str, geojson: Path, buffer_nm: float, gate: bool) -> None:
    import re

    from .maritime.geo import zones_from_geojson

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}", name):
        fail(f"zone name '{name}': use letters, digits, spaces, '.', '_' or '-' (at most 64)")
    try:
        doc = orjson.loads(geojson.read_bytes())
        zones = zones_from_geojson(doc, name=name, kind="gate" if gate else None, buffer=buffer_nm)
    except OSError as exc:
        fail(f"{geojson}: {exc.strerror}")
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        fail(f"{geojson}: not usable GeoJSON ({exc})")
    node = _open(home)
    try:
        folder = node.config.path(node.config.maritime.zones)
        folder.mkdir(parents=True, exist_ok=True)
        features = [{"type": "Feature", "properties": {"name": z.name, "kind": z.kind},
                     "geometry": orjson.loads(orjson.dumps(z.geometry.__geo_interface__))} for z in zones]
        (folder / f"{name}.geojson").write_bytes(orjson.dumps({"type": "FeatureCollection", "features": features}))
    finally:
        node.close()
    out.print(f"zone '{name}' added ({', '.join(z.kind for z in zones)})", highlight=False)


def _zones_list(home: Path) -> None:
    from .maritime.service import load_zones

    node = _open(home)
    try:
        zones = load_zones(node.config.path(node.config.maritime.zones), gates=node.config.maritime.island_chain_gates)
    finally:
        node.close()
    table = Table("name", "kind", "bounds (W, S, E, N)")
    for z in zones:
        table.add_row(z.name, z.kind, ", ".join(f"{b:.3f}" for b in z.bounds))
    out.print(table)


def _zones_remove(home: Path, name: str) -> None:
    node = _open(home)
    try:
        path = node.config.path(node.config.maritime.zones) / f"{name}.geojson"
        if not path.is_file():
            fail(f"no zone '{name}' (see `kuroshio ais zones {home} list`; the island-chain gates are turned off "
                 "with maritime.island_chain_gates = false)")
        path.unlink()
    finally:
        node.close()
    out.print(f"zone '{name}' removed", highlight=False)


def _area(text: str) -> tuple[float, float, float, float]:
    """An --area option: south,west,north,east in degrees."""
    try:
        south, west, north, east = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"--area '{text}': give south,west,north,east in degrees, e.g. 21.5,119,26,123")
    return south, west, north, east


@ais_app.command("events")
def ais_events(
    home: HomeArg,
    kind: Annotated[list[str] | None, typer.Option(help="Only events of this kind (repeatable): gap, loitering, "
                                                   "encounter, zone-entry, zone-exit, zone-dwell, transit, spoofing, "
                                                   "on-land, identity.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events that ended (or are open) after this STIX timestamp.")] = None,
    area: Annotated[str | None, typer.Option(help="Only events inside south,west,north,east (degrees).")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="List what this user may see (default: the node operator).")] = None,
) -> None:
    """Maritime events held by the node (its own and its partners'), newest first."""
    box = _area(area) if area else None
    node = _open(home)
    rows: list[dict[str, Any]] = []
    try:
        principal = _acting_as(node, as_user)
        for coll in node.store.collections():
            cursor = None
            while True:
                page = node.store.query(principal, coll, ObjectFilter(types=["maritime-event"], added_after=cursor,
                                                                      limit=1000), way="export")
                rows += [orjson.loads(r.raw) for r in page.rows if r.raw is not None]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
    except (NodeError, StoreError) as exc:
        fail(str(exc))
    finally:
        node.close()
    picked = []
    for e in rows:
        if kind and e.get("event_type") not in kind:
            continue
        if since and (e.get("end_time") or "9999") < since:
            continue
        if box and not (box[0] <= e.get("latitude", 999) <= box[2] and box[1] <= e.get("longitude", 999) <= box[3]):
            continue
        picked.append(e)
    picked.sort(key=lambda e: e.get("start_time", ""), reverse=True)
    table = Table(title=f"{len(picked)} maritime events")
    for column in ("start", "end", "event", "status", "where"):
        table.add_column(column, overflow="fold")
    for e in picked:
        table.add_row(e.get("start_time", "")[:19], (e.get("end_time") or "")[:19], e.get("name", ""),
                      e.get("status", ""), f"{e.get('latitude', 0):.3f}, {e.get('longitude', 0):.3f}")
    out.print(table)


@ais_app.command("track")
def ais_track(
    home: HomeArg,
    mmsi: Annotated[int | None, typer.Option(help="One vessel's positions.")] = None,
    area: Annotated[str | None, typer.Option(help="Positions inside south,west,north,east (degrees).")] = None,
    since: Annotated[str | None, typer.Option(help="From this STIX timestamp.")] = None,
    until: Annotated[str | None, typer.Option(help="Until this STIX timestamp.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many positions.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
) -> None:
    """Kept positions by vessel, or by area, in a time window."""
    from .maritime.tracks import open_tracks
    from .stix.timestamps import check, to_micros

    if (mmsi is None) == (area is None):
        fail("give --mmsi or --area (south,west,north,east)")
    window = []
    for name, value in (("--since", since), ("--until", until)):
        if value is not None and check(value) is not None:
            fail(f"{name} '{value}' is not a STIX timestamp such as 2026-11-01T00:00:00Z")
        window.append(to_micros(value) / 1e6 if value else None)
    node = _open(home)
    try:
        tracks = open_tracks(node)
        try:
            if mmsi is not None:
                rows = tracks.track(mmsi, window[0], window[1], limit)
            else:
                rows = tracks.area(*_area(area), window[0], window[1], limit)  # type: ignore[arg-type]
        finally:
            tracks.close()
    finally:
        node.close()
    from .maritime.intel import stamp

    if as_json:
        for p in rows:
            sys.stdout.write(orjson.dumps({"mmsi": p.mmsi, "time": stamp(p.t), "lat": p.lat, "lon": p.lon,
                                           "sog": p.sog, "cog": p.cog, "source": p.source}).decode() + "\n")
        return
    table = Table("mmsi", "time", "lat", "lon", "knots", "course", "receiver", title=f"{len(rows)} positions")
    for p in rows:
        table.add_row(str(p.mmsi), stamp(p.t), f"{p.lat:.5f}", f"{p.lon:.5f}",
                      "" if p.sog is None else f"{p.sog:.1f}", "" if p.cog is None else f"{p.cog:.1f}", p.source)
    out.print(table)


@ais_app.command("scenario")
def ais_scenario(
    out_file: Annotated[Path, typer.Argument(help="Where to write the NMEA sentences.")],
) -> None:
    """Write the East Asia scenario (vessels with known behaviour) as NMEA with tag blocks."""
    from .maritime.scenario import east_asia

    s = east_asia()
    lines = s.lines()
    out_file.write_text("\n".join(lines) + "\n")
    zones = out_file.with_suffix(".zones.geojson")
    zones.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": s.zones}))
    out.print(f"{len(lines):,} sentences in {out_file} ({len(s.truth)} events to find); its zones in {zones}",
              highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
