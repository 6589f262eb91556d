"""textsynth command line: `textsynth --help` lists the commands (each lives in textsynth/commands/)."""
from __future__ import annotations

import importlib
import sys

import click

from textsynth.errors import TextsynthError

# command name -> module under textsynth.commands defining a click command called `command`
COMMANDS = {
    "fonts": "fonts", "preview": "preview", "generate": "generate", "verify": "verify",
    "export": "export", "import": "import_", "profile": "profile", "train": "train", "edit": "edit",
    "evaluate": "evaluate",
}


class LazyGroup(click.Group):
    """Imports a command's module only when it runs, so `textsynth fonts` never imports torch or ray."""

    def list_commands(self, ctx):
        return [n for n in COMMANDS if self.get_command(ctx, n) is not None]

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None:
            return None
        try:
            return importlib.import_module(f"textsynth.commands.{mod}").command
        except ModuleNotFoundError as e:
            if e.name == f"textsynth.commands.{mod}":
                return None  # command not built yet
            raise


@click.group(cls=LazyGroup)
def app() -> None:
    """Synthetic scene-text editing pairs: render, generate, verify, load, train."""


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except TextsynthError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
