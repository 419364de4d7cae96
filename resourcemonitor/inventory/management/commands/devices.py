"""``resmon devices export|import``: the inventory as YAML (canonical) or CSV (flat).

A bad file is never half imported: every problem is listed as ``FILE:LINE: ...``, the
exit code is 1 and nothing is written. The work is done by ``inventory.io``; this
command reads and writes files and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


class Command(BaseCommand):
    help = "Export or import the device inventory as YAML or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{export,import}")
        export = actions.add_parser(
            "export", help="Write every site and device, sorted by name (stdout by default)."
        )
        export.add_argument(
            "--format", choices=FORMATS, help="yaml or csv (default: from -o's extension, or yaml)"
        )
        export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
        load = actions.add_parser(
            "import",
            help="Create or update devices by name from a file; all or nothing.",
        )
        load.add_argument("file", metavar="FILE", help="a .yaml/.yml or .csv file, or - for stdin")
        load.add_argument("--format", choices=FORMATS, help="yaml or csv (default: from FILE)")
        load.add_argument(
            "--dry-run", action="store_true", help="show what would change, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options["verbosity"])
        try:
            if options["action"] == "export":
                self.export(format=options["format"], output=options["output"])
            else:
                self.load(
                    path=options["file"], format=options["format"], dry_run=options["dry_run"]
                )
        except DatabaseError as exc:
            # Most often a data directory that was never migrated: say so, no traceback.
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CommandError(f"database error: {first_line} (has `resmon migrate` run?)") from exc

    def export(self, *, format: Format | None, output: str | None) -> None:
        chosen: Format = format or (guess_format(output) if output else None) or "yaml"
        text = export_inventory(format=chosen)
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{output}: cannot write: {exc.strerror or exc}") from None
        self.stdout.write(f"wrote {output}")

    def load(self, *, path: str, format: Format | None, dry_run: bool) -> None:
        chosen = format or guess_format(path)
        if chosen is None:
            raise CommandError(
                f"{path}: cannot tell the format; name it .yaml or .csv, or pass --format"
            )
        data = self.read(path)
        try:
            plan = import_inventory(
                inventory=parse_inventory(data=data, format=chosen), dry_run=dry_run
            )
        except InventoryFileError as exc:
            self.fail(path, exc)
        self.report(path, plan, dry_run=dry_run)

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
        for feed in sorted({str(device.values["feed"]) for device in plan.skipped}):
            count = sum(1 for device in plan.skipped if device.values["feed"] == feed)
            self.stderr.write(
                f"{path}: skipped {plural(count, 'device')} of the feed {feed}, which is not "
                "registered here (its devices appear once it is: `resmon feeds add URL`)"
            )
        if dry_run or self.verbosity >= 2:
            for line in plan.describe():
                self.stdout.write(line)
        if dry_run:
            self.stdout.write(f"dry run: would import {plan.summary()}; nothing was written")
        else:
            self.stdout.write(f"imported {plan.summary()}")
