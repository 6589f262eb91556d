"""textsynth command line: `textsynth --help` lists the commands (each lives in textsynth/commands/)."""
from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from textsynth import __version__
from textsynth.errors import TextsynthError

# command name -> module under textsynth.commands defining a click command called `command`
COMMANDS = {
    "fonts": "fonts", "backgrounds": "backgrounds", "preview": "preview", "generate": "generate", "verify": "verify",
    "export": "export", "import": "import_", "profile": "profile", "train": "train", "evaluate": "evaluate", "edit": "edit",
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
@click.version_option(__version__, prog_name="textsynth")
def app() -> None:
    """Synthetic scene-text editing pairs: render, generate, verify, load, train."""


def error_line(exc: BaseException) -> str:
    """One line naming what went wrong: Ray task errors unwrapped to their cause, secrets redacted."""
    from textsynth.shards.storage import redact

    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError carries the task's own exception
    if cause is not None and type(exc).__module__.startswith("ray"):
        exc = cause
    if isinstance(exc, TextsynthError):
        msg = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        msg = f"{names}: {exc.strerror}" if names else exc.strerror
    else:
        text = str(exc).strip()
        msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    if "Original Traceback (most recent call last):" in lines:  # re-raised by a torch DataLoader worker
        last = lines[-1]
        lines = [last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith(type(exc).__name__) else last]
    return "error: " + redact(" | ".join(lines[:3]) if lines else type(exc).__name__)


def main() -> None:
    """Run the CLI; every failure is one `error: ...` line and a non-zero exit (TEXTSYNTH_DEBUG=1: traceback)."""
    debug = os.environ.get("TEXTSYNTH_DEBUG", "") not in ("", "0")
    try:
        rv = app(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:  # bad usage: one line too, with where to look
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see '{e.ctx.command_path} --help')"
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - the one place every error becomes one line
        if debug:
            traceback.print_exc()
        click.echo(error_line(e), err=True)
        sys.exit(2 if isinstance(e, (TextsynthError, OSError)) else 1)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
