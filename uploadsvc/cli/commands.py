"""`flask cleanup` and `flask stats`: housekeeping for cron and a look for people."""
# Each command fails with one line on stderr and exit status 1 (guard.py); Flask's debug
# mode (`flask --debug`, FLASK_DEBUG=1) adds the traceback.
import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..core.units import parse_duration
from ..services import access, housekeeping, stats
from ..services.events import retention
from .errors import CommandError
from .guard import GuardedCommand, GuardedGroup, guarded_copy


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command("cleanup", cls=GuardedCommand)
@click.option("--older-than", type=Duration(), default=None,
              help="Idle time after which an unfinished upload is removed "
                   "(default: UPLOAD_EXPIRY, 24h). Examples: 90m, 24h, 7d.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@with_appcontext
def cleanup_command(older_than, dry_run):
    """Remove expired unfinished uploads, orphaned chunk directories, finished files no
    upload references (object store) and stale temp files; fold chunk events older than
    EVENT_RETENTION into daily totals."""
    if older_than is None:  # not `or`: 0s is a valid choice (everything idle), not "unset"
        older_than = current_app.config["UPLOAD_EXPIRY"]
    report = housekeeping.cleanup(older_than, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for upload in report.expired:
        click.echo(f"{verb} expired upload {upload.md5} {upload.file_name!r} "
                   f"(idle since {upload.updated_at:%Y-%m-%d %H:%M:%S} UTC)")
    for path in report.orphan_dirs:
        click.echo(f"{verb} orphaned chunk directory {path}")
    for name in report.orphan_files:
        click.echo(f"{verb} finished file no upload references {name!r}")
    for path in report.temp_files:
        click.echo(f"{verb} stale temp file {path}")
    click.echo(f"{verb} {len(report.expired)} expired uploads, {len(report.orphan_dirs)} "
               f"orphaned chunk directories, {len(report.orphan_files)} unreferenced files, "
               f"{len(report.temp_files)} temp files")
    pruned = retention.prune(current_app.config["EVENT_RETENTION"], dry_run=dry_run)
    click.echo(f"{verb} {pruned.folded} chunk events past the retention (kept as daily "
               f"totals), {pruned.deliveries} sent or failed webhook deliveries")


@click.command("stats", cls=GuardedCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@with_appcontext
def stats_command(as_json):
    """Print upload statistics: counts, bytes, success rate, throughput, last 24 hours."""
    figures = stats.collect_stats()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    rate = figures["successRate"]
    speed = figures["meanThroughputBytesPerSecond"]
    rows = [
        ("Uploads in progress", figures["uploads"]["uploading"], figures["last24h"]["created"]),
        ("Uploads completed", figures["uploads"]["completed"], figures["last24h"]["completed"]),
        ("Verification failures", figures["events"]["verification_failed"],
         figures["last24h"]["verification_failed"]),
        ("Deleted", figures["events"]["deleted"], figures["last24h"]["deleted"]),
        ("Expired", figures["events"]["expired"], figures["last24h"]["expired"]),
        ("Chunks stored", figures["events"]["chunks_stored"], figures["last24h"]["chunks_stored"]),
        ("Bytes received", _size(figures["bytesReceived"]),
         _size(figures["last24h"]["bytes_received"])),
    ]
    click.echo(f"{'':24}{'all time':>14}{'last 24 h':>14}")
    for label, total, recent in rows:
        click.echo(f"{label:24}{total!s:>14}{recent!s:>14}")
    click.echo(f"{'Success rate':24}{'-' if rate is None else f'{rate:.1%}':>14}")
    click.echo(f"{'Mean throughput':24}{'-' if speed is None else _size(speed) + '/s':>14}")
    click.echo(f"{'By protocol':24}{'in progress':>14}{'completed':>14}")
    for protocol, counts in figures["uploadsByProtocol"].items():
        click.echo(f"{'  ' + protocol:24}{counts['uploading']:>14}{counts['completed']:>14}")



@click.group("keys", cls=GuardedGroup)
def keys_group():
    """Create, list and revoke API keys (needed when UPLOADSVC_AUTH_REQUIRED is on)."""


@keys_group.command("create")
@click.argument("name")
def keys_create(name):
    """Create a key named NAME and print it; it is shown only this once."""
    key, token = access.create_key(name)
    click.echo(f"created key {key.id} ({name}); give this to the client, it is not stored:")
    click.echo(token)


@keys_group.command("list")
def keys_list():
    """List keys: id, name, prefix, created, revoked."""
    for key in access.list_keys():
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        click.echo(f"{key.id:>5}  {key.name:<24} {key.prefix}...  "
                   f"created {key.created_at:%Y-%m-%d %H:%M}  {revoked}")


@keys_group.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id):
    """Revoke the key KEY_ID; requests with it are refused from now on."""
    key = access.revoke_key(key_id)
    if key is None:
        raise CommandError(f"no key {key_id}")
    click.echo(f"revoked key {key.id} ({key.name})")


def init_app(app: Flask) -> None:
    """Add the commands; Flask-Migrate's `db`, when loaded, is replaced by a guarded copy."""
    app.cli.add_command(cleanup_command)
    app.cli.add_command(stats_command)
    app.cli.add_command(keys_group)
    migrate_group = app.cli.commands.get("db")
    if isinstance(migrate_group, click.Group):  # `db upgrade` on a server that is down
        app.cli.add_command(guarded_copy(migrate_group), "db")
