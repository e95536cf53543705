"""What every command of the tools is on click: man-page help, plain usage errors, exit statuses, --version.

Help reads like a man page: `usage: SYNOPSIS`, the command's own leading
sections (NAME, DESCRIPTION ...: its `help`, written as given), its options
in titled groups with their names spelled as typed (`-d SECONDS, --duration
SECONDS`, a choice as `{text,json}`), then the closing sections (EXAMPLES,
FILES, EXIT STATUS, SEE ALSO: click's `epilog`, written as given).

`ToolCommand.main` runs a command the same way from the console script,
from `run()` and from click's CliRunner: a malformed command line prints
the synopsis and `PROG: error: MESSAGE` (click's wording of the problem) on
stderr and exits 2; otherwise the callback's return value is the exit
status.  The callback reports its own errors (each command words them its
own way).  Ctrl-C is 130.  Any other exception is a defect of the command:
run as a program it is one line, `PROG: internal error: ...`, and status 2;
run in process (`standalone_mode=False`), it propagates to the caller.

A command's byte streams are `Streams` given as the context's object (by
`run()` and tests), or else the process's (CliRunner's, under it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import BinaryIO, Callable

import click

DISTRIBUTION = "vprobes-toolchain"
USAGE_STATUS = 2
NAMES_WIDTH = 20  # the widest option names that keep their help on the same line
INTERRUPTED_STATUS = 130


@dataclass
class Streams:
    stdin: BinaryIO
    stdout: BinaryIO
    stderr: BinaryIO

    @classmethod
    def of(cls, ctx: click.Context | None = None) -> "Streams":
        """The streams a command was given, or the process's own."""
        given = ctx.find_object(Streams) if ctx is not None else None
        if given is not None:
            return given
        return cls(sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)  # CliRunner's, under it


def write_message(stream: BinaryIO, text: str) -> None:
    """A message to people on a byte stream (UTF-8; a reader that went away is ignored)."""
    try:
        stream.write(text.encode("utf-8", "surrogateescape"))
        stream.flush()
    except BrokenPipeError:
        pass


class ManOption(click.Option):
    """An option listed under a titled group of the help, named as it is typed."""

    def __init__(self, *args, group: str = "OPTIONS", **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def help_names(self) -> str:
        if self.is_flag or self.count:
            return ", ".join(self.opts)
        if self.metavar:
            metavar = self.metavar
        elif isinstance(self.type, click.Choice):
            metavar = "{" + ",".join(map(str, self.type.choices)) + "}"
        else:
            metavar = "VALUE"
        return ", ".join(f"{name} {metavar}" for name in self.opts)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if self.hidden:
            return None
        return self.help_names(), self.help or ""


def option(*names: str, **kwargs) -> Callable:
    """`click.option` for a `ManOption` (`group=` titles its section of the help)."""
    return click.option(*names, cls=ManOption, **kwargs)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "(not installed)"


def version_option(*, with_vp: bool = False, group: str = "OPTIONS") -> Callable:
    """--version: `PROG (vprobes-toolchain) VERSION`, and `VP 1.0` (the language's version) if `with_vp`."""

    def show(ctx: click.Context, param, value) -> None:
        if not value or ctx.resilient_parsing:
            return
        lines = [f"{ctx.find_root().info_name} ({DISTRIBUTION}) {package_version()}"]
        if with_vp:
            from ..vm.machine_info import vp_version

            lines.append(f"VP {vp_version()}")
        click.echo("\n".join(lines))
        ctx.exit(0)

    return option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show, group=group,
                  help="print the version and exit")


def write_rows(formatter: click.HelpFormatter, rows: list[tuple[str, str]], names_width: int) -> None:
    """Options and their help in two columns, the help aligned in every section (as man pages do).

    Names wider than the column get a line of their own, the help below them.
    """
    indent = " " * formatter.current_indent
    help_at = formatter.current_indent + names_width + 2
    width = max(formatter.width - help_at, 20)
    for names, text in rows:
        lines = click.formatting.wrap_text(text, width).splitlines() or [""]
        if len(names) <= names_width:
            formatter.write(f"{indent}{names:<{names_width}}  {lines[0]}".rstrip() + "\n")
            lines = lines[1:]
        else:
            formatter.write(f"{indent}{names}\n")
        formatter.write("".join(f"{' ' * help_at}{line}\n" for line in lines))


def exclusive(ctx: click.Context, *names: str) -> None:
    """A usage error if more than one of the options `names` (parameter names) is given."""
    given = [p for p in ctx.command.params if p.name in names and ctx.params.get(p.name)]
    if len(given) > 1:
        first, second = (p.opts[-1] for p in given[:2])
        raise click.UsageError(f"{second} cannot be given with {first}", ctx)


def missing_requirement(ctx: click.Context, requires: dict[str, tuple[str, ...]]) -> str | None:
    """What is wrong when an option given on the command line needs another that is not given
    (`requires`: parameter name -> the parameters one of which it needs), e.g. `--folded needs -s`."""
    params = {p.name: p for p in ctx.command.params}

    def spelled(name: str) -> str:
        opts = params[name].opts
        return " (".join(opts) + ")" if len(opts) > 1 else opts[0]

    for param in ctx.command.params:
        needs = requires.get(param.name)
        if needs is None or ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        if not any(ctx.params.get(n) for n in needs):
            return f"{param.opts[-1]} needs {' or '.join(spelled(n) for n in needs)}"
    return None


def _show_help(ctx: click.Context, param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(ctx.get_help())
    ctx.exit(0)


class ToolMixin:
    """Man-page help and the tools' exit statuses for a click command or group (see the module's description)."""

    usage_status = USAGE_STATUS

    def __init__(self, *args, synopsis: str = "", help_group: str = "OPTIONS", **kwargs):
        super().__init__(*args, **kwargs)
        self.synopsis = synopsis
        self.help_group = help_group  # the section that lists -h, --help
        self._man_help: ManOption | None = None

    # ---- help ------------------------------------------------------------------------------------

    def get_help_option(self, ctx: click.Context) -> ManOption | None:
        free = set(self.get_help_option_names(ctx))  # a set before click 8.5: keep the order they are given in
        names = [name for name in ctx.help_option_names if name in free]
        if not names or not self.add_help_option:
            return None
        if self._man_help is None:
            self._man_help = ManOption(names, is_flag=True, is_eager=True, expose_value=False, callback=_show_help,
                                       help="show this help and exit", group=self.help_group)
        return self._man_help

    def usage_line(self, ctx: click.Context | None) -> str:
        path = ctx.command_path if ctx is not None else self.name
        return f"usage: {path} {self.synopsis}".rstrip()

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(self.usage_line(ctx) + "\n")

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.format_usage(ctx, formatter)
        if self.help:
            formatter.write("\n" + self.help.rstrip("\n") + "\n")
        self.format_options(ctx, formatter)
        self.format_commands(ctx, formatter)
        if self.epilog:
            formatter.write("\n" + self.epilog.rstrip("\n") + "\n")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                groups.setdefault(getattr(param, "group", "OPTIONS"), []).append(record)
        names_width = min(NAMES_WIDTH, max((len(n) for rows in groups.values() for n, _ in rows), default=0))
        for title, records in groups.items():
            formatter.write("\n")
            formatter.write_heading(title)
            with formatter.indentation():
                write_rows(formatter, records, names_width)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """A group lists its commands here (a plain command has none)."""

    # ---- running ---------------------------------------------------------------------------------

    def usage_of(self, ctx: click.Context | None) -> str:
        """The usage line of the command (or verb) `ctx` was parsing."""
        command = ctx.command if ctx is not None else self
        return command.usage_line(ctx) if isinstance(command, ToolMixin) else self.usage_line(None)

    def format_usage_error(self, ctx: click.Context | None, error: click.UsageError) -> str:
        prog = ctx.find_root().info_name if ctx is not None else self.name
        return f"{self.usage_of(ctx)}\n{prog}: error: {error.format_message()}\n"

    def invoke(self, ctx: click.Context):
        """The callback's exit status; Ctrl-C (or a SIGTERM made one) is 130, with nothing more said."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            return INTERRUPTED_STATUS

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Run the command: returns its exit status, or (`standalone_mode`) exits with it."""
        prog_name = prog_name or self.name
        given = extra.get("obj")
        stderr = given.stderr if isinstance(given, Streams) else sys.stderr.buffer
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            write_message(stderr, self.format_usage_error(e.ctx, e))
            status = self.usage_status
        except click.exceptions.Exit as e:
            status = e.exit_code
        except (click.Abort, KeyboardInterrupt):
            status = INTERRUPTED_STATUS
        except click.ClickException as e:
            write_message(stderr, f"{prog_name}: {e.format_message()}\n")
            status = e.exit_code
        except Exception as e:
            if not standalone_mode:
                raise
            write_message(stderr, f"{prog_name}: internal error: {type(e).__name__}: {e}\n")
            status = 2
        status = 0 if status is None else status
        if standalone_mode:
            sys.exit(status)
        return status


class ToolCommand(ToolMixin, click.Command):
    """A command of the tools."""


class ToolGroup(ToolMixin, click.Group):
    """A command of the tools with subcommands (vmrun's verbs)."""
