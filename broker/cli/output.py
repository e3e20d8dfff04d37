"""What the operator commands print: rich tables for people, ``--json`` for scripts.

A command builds one ``Report``: the data (plain dicts and lists, printed as one JSON
document with ``--json``) and the tables that show it. Tables go to stdout; notes and
errors to stderr, so ``odradek topics list | wc -l`` counts topics, not headings.
When stdout is not a terminal rich would wrap at 80 columns; a wide fixed width keeps
each row on one line for grep and for the tests that read it.
"""

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 200  # columns when stdout is not a terminal


class CliError(Exception):
    """A failure the operator can act on: the message says what happened and what to do.
    ``main`` prints it as ``odradek: error: ...`` and exits with status 1."""

    kafka_error: type | None = None  # the Kafka error it explains, if one


@dataclass
class Report:
    data: Any
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown under the tables, never in JSON

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> "Report":
        self.tables.append((title, columns, rows))
        return self


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else PIPE_WIDTH,
                   highlight=False, soft_wrap=False)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def emit(report: Report, as_json: bool) -> None:
    if as_json:
        json.dump(report.data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    out = console()
    for title, columns, rows in report.tables:
        table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(cell(v) for v in row))
        if not rows:
            out.print(f"{title}: none" if title else "none")
        else:
            out.print(table)
    for note in report.notes:
        console(stderr=True).print(note)
