"""``resmon devices export|import|import-netbox``: the inventory as code.

YAML is canonical (CSV is the flat form, devices only). A bad file is never half
imported: every problem is listed as ``FILE:LINE: ...``, the exit code is 1 and nothing
is written. The work is done by ``inventory.io`` and ``inventory.netbox``; this command
reads and writes files and prints. stdout carries the export or the summary (``--json``
for scripts); progress bars go to stderr, and only when it is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from resourcemonitor.inventory.io import (
    FORMATS,
    MAX_FILE_BYTES,
    Format,
    ImportPlan,
    InventoryFileError,
    export_inventory,
    guess_format,
    import_inventory,
    parse_inventory,
    plural,
)

if TYPE_CHECKING:
    from rich.progress import Progress


class Steps:
    """A progress bar of a command's steps on stderr, drawn only when stderr is a terminal.

    The import and export are each a few big steps (read, check, write), so the bar
    counts steps and names the one running; nothing is drawn into a pipe or a log.
    """

    def __init__(self, stream: TextIO, *, total: int, enabled: bool) -> None:
        self.progress: Progress | None = None
        if enabled:
            # Imported here: rich costs ~0.15 s at start-up, and pipes never need it.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=stream, force_terminal=True),
                transient=True,
            )
            self.task = self.progress.add_task("", total=total)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        if self.progress is None:
            yield
            return
        self.progress.update(self.task, description=description)
        if not self.progress.live.is_started:
            self.progress.start()
        yield
        self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None and self.progress.live.is_started:
            self.progress.stop()


class Command(BaseCommand):
    help = (
        "The device inventory as code: export it as YAML (canonical) or CSV, import a file "
        "back (create or update by name, all or nothing; --dry-run shows the diff, --prune "
        "deletes what the file no longer has), or import devices from NetBox."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{export,import,import-netbox}"
        )
        export = actions.add_parser(
            "export",
            help="Write every site, device and maintenance window, sorted by name (stdout by "
            "default).",
        )
        export.add_argument(
            "--format", choices=FORMATS, help="yaml or csv (default: from -o's extension, or yaml)"
        )
        export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
        export.add_argument(
            "--json", action="store_true", help="with -o: print the summary as JSON"
        )
        load = actions.add_parser(
            "import",
            help="Create or update devices and maintenance windows by name from a file; all or "
            "nothing.",
        )
        load.add_argument("file", metavar="FILE", help="a .yaml/.yml or .csv file, or - for stdin")
        load.add_argument("--format", choices=FORMATS, help="yaml or csv (default: from FILE)")
        load.add_argument(
            "--dry-run", action="store_true", help="show what would change, write nothing"
        )
        load.add_argument(
            "--prune",
            action="store_true",
            help="also delete devices the file does not have (never feed-owned ones), and "
            "maintenance windows if the file has a 'maintenance' list",
        )
        load.add_argument("--json", action="store_true", help="print the summary as JSON")
        netbox = actions.add_parser(
            "import-netbox",
            help="Create or update devices from NetBox: name, primary IP, site, role (as kind), "
            "tags, and parent from cabling.",
        )
        netbox.add_argument(
            "url", metavar="URL", help="NetBox's address, e.g. https://netbox.example"
        )
        netbox.add_argument("--token", required=True, help="a NetBox API token (read access)")
        netbox.add_argument(
            "--dry-run", action="store_true", help="show what would change, write nothing"
        )
        netbox.add_argument(
            "--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)"
        )
        netbox.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options["verbosity"])
        self.json = bool(options["json"])
        stream = cast(TextIO, self.stderr._out)
        action = options["action"]
        total = {"export": 2 if options.get("output") else 1, "import": 2}.get(action, 3)
        self.steps = Steps(stream, total=total, enabled=self._tty())
        try:
            if options["action"] == "export":
                self.export(format=options["format"], output=options["output"])
            elif options["action"] == "import-netbox":
                self.load_netbox(
                    url=options["url"],
                    token=options["token"],
                    dry_run=options["dry_run"],
                    timeout=options["timeout"],
                )
            else:
                self.load(
                    path=options["file"],
                    format=options["format"],
                    dry_run=options["dry_run"],
                    prune=options["prune"],
                )
        except DatabaseError as exc:
            # Most often a data directory that was never migrated: say so, no traceback.
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CommandError(f"database error: {first_line} (has `resmon migrate` run?)") from exc
        finally:
            self.steps.close()

    def _tty(self) -> bool:
        return bool(self.stderr.isatty())

    def export(self, *, format: Format | None, output: str | None) -> None:
        if self.json and output is None:
            raise CommandError("--json needs -o FILE: stdout carries the export itself")
        chosen: Format = format or (guess_format(output) if output else None) or "yaml"
        with self.steps.step("reading the inventory"):
            text = export_inventory(format=chosen)
        if output is None:
            self.stdout.write(text, ending="")
            return
        with self.steps.step(f"writing {output}"):
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{output}: cannot write: {exc.strerror or exc}") from None
        if self.json:
            summary = {"output": output, "format": chosen, "bytes": len(text.encode())}
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(f"wrote {output}")

    def load(self, *, path: str, format: Format | None, dry_run: bool, prune: bool) -> None:
        chosen = format or guess_format(path)
        if chosen is None:
            raise CommandError(
                f"{path}: cannot tell the format; name it .yaml or .csv, or pass --format"
            )
        data = self.read(path)
        try:
            with self.steps.step(f"parsing {Path(path).name}"):
                inventory = parse_inventory(data=data, format=chosen)
            with self.steps.step("checking and writing" if not dry_run else "checking"):
                plan = import_inventory(inventory=inventory, dry_run=dry_run, prune=prune)
        except InventoryFileError as exc:
            self.fail(path, exc)
        self.report(path, plan, dry_run=dry_run)

    def load_netbox(self, *, url: str, token: str, dry_run: bool, timeout: float) -> None:
        if not timeout > 0:  # also refuses nan
            raise CommandError(f"--timeout must be a positive number of seconds (got {timeout})")
        # Imported here: pynetbox (and requests) cost ~0.25 s at start-up.
        from resourcemonitor.inventory.netbox import NetboxError, fetch_netbox, netbox_inventory

        try:
            with self.steps.step("fetching from NetBox"):
                data = fetch_netbox(url=url, token=token, timeout=timeout)
            with self.steps.step("mapping devices"):
                inventory, skipped, names = netbox_inventory(data=data)
            for line in skipped:
                self.stderr.write(f"{url}: skipped {line}")
            with self.steps.step("checking and writing" if not dry_run else "checking"):
                plan = import_inventory(inventory=inventory, dry_run=dry_run)
        except NetboxError as exc:
            raise CommandError(f"{url}: {exc}") from None
        except InventoryFileError as exc:
            lines = [
                f"{url}: device {names.get(problem.line, '?')!r}: "
                + problem.format("").split(": ", 1)[-1]
                for problem in exc.problems
            ]
            if len(lines) == 1:
                raise CommandError(lines[0]) from None
            for line in lines:
                self.stderr.write(line)
            raise CommandError(f"{url}: {len(lines)} problems, nothing was imported") from None
        self.report(url, plan, dry_run=dry_run)

    def read(self, path: str) -> bytes:
        if path == "-":
            return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        file = Path(path)
        try:
            if file.is_dir():
                raise CommandError(f"{path}: is a directory, not a file")
            if file.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(f"{path}: too large (over {MAX_FILE_BYTES} bytes)")
            return file.read_bytes()
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except PermissionError:
            raise CommandError(f"{path}: permission denied") from None
        except OSError as exc:
            raise CommandError(f"{path}: cannot read: {exc.strerror or exc}") from None

    def fail(self, path: str, error: InventoryFileError) -> None:
        lines = error.lines(path)
        if len(lines) == 1:
            raise CommandError(lines[0])
        # One problem a line on stderr, then the count as the CommandError line, so that
        # every problem starts with FILE:LINE (an editor or grep can jump to it).
        for line in lines:
            self.stderr.write(line)
        raise CommandError(f"{path}: {len(lines)} problems, nothing was imported")

    def report(self, path: str, plan: ImportPlan, *, dry_run: bool) -> None:
        if self.json:
            self.stdout.write(json.dumps(plan.as_dict(dry_run=dry_run)))
            return
        for feed in sorted({str(device.values["feed"]) for device in plan.skipped}):
            count = sum(1 for device in plan.skipped if device.values["feed"] == feed)
            self.stderr.write(
                f"{path}: skipped {plural(count, 'device')} of the feed {feed}, which is not "
                "registered here (its devices appear once it is: `resmon feeds add URL`)"
            )
        for line in plan.describe():
            # Deletions are always shown: nothing disappears without a word.
            if dry_run or self.verbosity >= 2 or line.startswith("delete "):
                self.stdout.write(line)
        if dry_run:
            self.stdout.write(f"dry run: would import {plan.summary()}; nothing was written")
        else:
            self.stdout.write(f"imported {plan.summary()}")
