"""The `spectra` command line as documents use it: which sub-command a line of words names."""

from __future__ import annotations

import click

from spectra.cli import cli


def spectra_command(argv: list[str], where: str) -> tuple[click.Command, list[str], list[str]]:
    """(the command, its sub-command path, the words after it) of `spectra ARGV`; fails naming `where`
    when a sub-command does not exist."""
    command: click.Command = cli
    words = list(argv)
    path: list[str] = []
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"{where}: `spectra {' '.join([*path, name])}` does not exist"
        command = command.commands[name]
        path.append(name)
    return command, path, words
