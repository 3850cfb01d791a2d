"""`uploadsvc-upload FILE... --url URL`: upload files, resuming whatever the server has."""
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import click
from tqdm import tqdm

from ..version import __version__
from . import chunked
from .files import InvalidFile, Source, md5_file, open_source
from .http import Api, ClientError, ServerUnreachable, make_session

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        if not match or int(match.group(1)) == 0:
            self.fail(f"{value!r} is not a size (examples: 5MiB, 512KiB, 1048576)", param, ctx)
        return int(match.group(1)) * _UNITS[match.group(2).lower()]


class Progress:
    """Overall and per-file progress bars (tqdm, on stderr; off when it is not a terminal)."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.lock = threading.Lock()
        disable = None if enabled is None else not enabled  # None: tqdm asks isatty()
        self.overall = tqdm(total=total, desc="all files", unit="B", unit_scale=True,
                            unit_divisor=1024, position=0, disable=disable)
        self.bar = None

    def file_bar(self, desc: str, total: int) -> tqdm:
        return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    position=1, leave=False, disable=self.overall.disable)

    def hashing(self, source: Source) -> str:
        with self.file_bar(f"hashing {source.name}", source.size) as bar:
            return md5_file(source.path, bar.update)

    def sending(self, source: Source) -> tuple[Callable[[int], None], Callable[[int], None]]:
        """Callbacks for one file, tied to its own bar (a late chunk worker of a failed file
        never moves the next file's bar): bytes sent, and bytes the server already had."""
        bar = self.bar = self.file_bar(source.name, source.size)

        def sent(n: int) -> None:
            with self.lock:  # chunk workers report from their threads
                bar.update(n)
                self.overall.update(n)

        def resumed(n: int) -> None:  # shown as done, left out of the transfer rate
            with self.lock:
                for each in (bar, self.overall):
                    if not each.disable:  # a disabled tqdm keeps no counts
                        each.initial += n
                        each.n += n
                        each.last_print_n += n
                        each.refresh()

        return sent, resumed

    def done(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, line: str, err: bool = False) -> None:
        tqdm.write(line, file=sys.stderr if err else sys.stdout)


PROTOCOLS = ("api", "tus", "ietf")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--url", envvar="UPLOADSVC_URL", default="http://localhost:3000",
              show_default=True, help="The server's base URL (or UPLOADSVC_URL).")
@click.option("--parallel", "-p", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Chunks sent at once (--tus sends each file's bytes in order).")
@click.option("--chunk-size", type=ByteSize(), default="5MiB", show_default=True,
              help="Bytes per chunk; keep it the same to resume an upload.")
@click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Attempts after the first for each request, with exponential backoff.")
@click.option("--backoff", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Backoff factor in seconds: waits grow as backoff * 2^attempt, up to 30 s.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=120,
              show_default=True, help="Seconds to wait for the server to answer a request.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="api", show_default=True,
              help="The chunk API; tus 1.0 on /files/; or the IETF resumable upload draft "
                   "(interop 9) on /files/.")
@click.option("--tus", "use_tus", is_flag=True, help="The same as --protocol tus.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress bars (default: when stderr is a terminal).")
@click.version_option(__version__, prog_name="uploadsvc-upload")
def main(files, url, parallel, chunk_size, retries, backoff, timeout, protocol, use_tus,
         progress):
    """Upload FILES to uploadsvc, resuming uploads the server already has chunks of.

    Prints each file's path on the server and its MD5. Run the same command again after an
    interruption to go on where it stopped. Exit status: 0 all uploaded, 1 some failed,
    130 interrupted.
    """
    options = chunked.Options(parallel=parallel, retries=retries, backoff=backoff,
                              timeout=timeout)
    sources, failed = [], 0
    for path in files:
        try:
            sources.append(open_source(path, chunk_size))
        except InvalidFile as exc:
            click.echo(f"uploadsvc-upload: {path}: {exc}", err=True)
            failed += 1
    session = make_session(retries, backoff, parallel, f"uploadsvc-upload/{__version__}")
    api = Api(url, session, timeout)
    bars = Progress(sum(source.size for source in sources), progress)
    try:
        failed += _upload_all(api, sources, options, "tus" if use_tus else protocol, bars)
    except KeyboardInterrupt:
        bars.done()
        bars.overall.close()
        click.echo("uploadsvc-upload: interrupted; run the same command again to resume "
                   "where it stopped.", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave at once: chunks in flight are dropped, and the server never counts them.
        os._exit(EXIT_INTERRUPTED)
    bars.overall.close()
    sys.exit(EXIT_FAILED if failed else 0)


def _upload_all(api: Api, sources: list[Source], options: chunked.Options, protocol: str,
                bars: Progress) -> int:
    failed = 0
    for index, source in enumerate(sources):
        try:
            md5 = bars.hashing(source)
            if protocol == "tus":
                from . import tus  # tuspy pulls in aiohttp: load it only when asked

                result = tus.upload(api.base_url + "/files/", source, md5, options,
                                    *bars.sending(source))
            elif protocol == "ietf":
                from . import resumable

                result = resumable.upload(api, source, md5, options, *bars.sending(source))
            else:
                result = chunked.upload(api, source, md5, options, *bars.sending(source))
        except ServerUnreachable as exc:
            bars.done()
            bars.write(f"uploadsvc-upload: {source.path}: {exc}", err=True)
            skipped = len(sources) - index - 1
            if skipped:
                bars.write(f"uploadsvc-upload: {skipped} more file(s) not tried", err=True)
            return failed + 1 + skipped
        except (ClientError, OSError) as exc:
            bars.done()
            bars.write(f"uploadsvc-upload: {source.path}: {_describe(exc)}", err=True)
            if getattr(exc, "code", None) == "md5_mismatch":
                bars.write("uploadsvc-upload: the server keeps the chunks it has; to send the "
                           f"file anew, delete them first: curl -X DELETE "
                           f"{api.base_url}/api/upload/{md5}/{quote(source.name)}", err=True)
            failed += 1
            continue
        bars.done()
        bars.write(f"{source.path}: {result.path}  md5 {result.md5}  ({result.size} bytes; "
                   f"sent {result.sent} of {result.total} chunks)")
    return failed


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, ClientError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)
