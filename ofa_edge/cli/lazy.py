"""A root command group that imports a command's module only when that command runs.

``ofa-edge --help`` lists every command from a static table (name, module, one-line help), so the help,
``--version`` and the light commands start without importing torch or the exporters.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """A top-level command: the module whose ``register(app)`` defines it and its one-line help."""

    module: str
    summary: str


#: Top-level commands in help order; ``summary`` is the first line of the command's docstring
#: (tests/test_cli_startup.py checks that the two agree).
COMMANDS: dict[str, LazyCommand] = {
    "space": LazyCommand("ofa_edge.cli.space", "Inspect search spaces."),
    "subnet": LazyCommand("ofa_edge.cli.space", "Show one subnet: its id, MACs and parameter count."),
    "train": LazyCommand("ofa_edge.cli.train",
                         "Train a once-for-all supernet with one of the registered strategies (see --strategy)."),
    "eval": LazyCommand("ofa_edge.cli.train",
                        "Recalibrate BN for one subnet, then report top-1 / top-5 / ECE on the test split."),
    "pretrained": LazyCommand("ofa_edge.cli.pretrained", "Pretrained supernets shipped with ofa-edge (usable "
                              "wherever a checkpoint is)."),
    "use": LazyCommand("ofa_edge.cli.workspace", "Make CHECKPOINT this folder's current supernet (in ofa-edge.toml)."),
    "status": LazyCommand("ofa_edge.cli.workspace",
                          "Show this folder's workspace: supernet, predictor, latency tables and builds."),
    "devices": LazyCommand("ofa_edge.cli.devices", "List and check device profiles."),
    "profile": LazyCommand("ofa_edge.cli.devices", "Measure every distinct layer and a sample of whole subnets; "
                           "write latency_tables/<device>/<runtime>.csv (<runtime>-int8.csv with --precision "
                           "int8)."),
    "validate": LazyCommand("ofa_edge.cli.devices", "Measure held-out subnets and report MAPE, the fraction within "
                            "±10 % and Kendall's tau."),
    "predictor": LazyCommand("ofa_edge.cli.search", "Fit the accuracy predictor of a trained supernet."),
    "specialize": LazyCommand("ofa_edge.cli.search", "Pick the most accurate subnet per latency budget, extract, "
                              "recalibrate, test, export, write a manifest."),
    "pareto": LazyCommand("ofa_edge.cli.search", "Accuracy vs latency: the search's front, random subnets and "
                          "measured points (PNG + CSV)."),
    "build": LazyCommand("ofa_edge.cli.export", "Build every target of a targets.toml; exit 1 listing the failed "
                         "targets (budget, parity, converter)."),
    "demo": LazyCommand("ofa_edge.cli.demo", "Specialise the packaged CIFAR-10 supernet (or, with --from-scratch, "
                        "train one on the embedded set) for this machine: profile it, specialise three latency "
                        "budgets, export ONNX + INT8 (TFLite/CoreML when installed), measure, report."),
    "report": LazyCommand("ofa_edge.cli.demo", "Print again what the demo printed (or the budgets table of any "
                          "builds folder) from files on disk."),
}


def hide_flag_types(cmd: click.Command) -> None:
    """Blank the ``<bool>`` type that typer's help shows beside flags (they take no value), ``--help`` included."""
    help_option = cmd.get_help_option(type(cmd).context_class(cmd, **cmd.context_settings))
    for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        hide_flag_types(sub)


def load_commands(module: str) -> dict[str, click.Command]:
    """The click commands that ``module.register`` defines, by name."""
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    group = typer.main.get_group(sub)
    for cmd in group.commands.values():
        hide_flag_types(cmd)
    return dict(group.commands)


class LazyGroup(TyperGroup):
    """A typer group whose commands are imported on first use; help lists them from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in COMMANDS if n not in self.commands)]

    def load(self, name: str) -> click.Command | None:
        """Import the module of command ``name`` and add its commands to the group."""
        if name not in self.commands and name in COMMANDS:
            for cmd_name, cmd in load_commands(COMMANDS[name].module).items():
                self.commands.setdefault(cmd_name, cmd)
        return self.commands.get(name)

    def get_help_option(self, ctx: click.Context):
        option = super().get_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    def load_all(self) -> None:
        """Import every command (for the CLI reference)."""
        for name in COMMANDS:
            self.load(name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        return click.Command(cmd_name, short_help=entry.summary, help=entry.summary)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in COMMANDS:
            self.load(args[0])
        return super().resolve_command(ctx, args)
