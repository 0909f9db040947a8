"""`corridor kafka TOOL ...`: Kafka's own CLI tools, run from the broker's jars against our cluster."""

from __future__ import annotations

import os

import typer

from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.stack.kafka import tools_argv, write_client_properties

__all__ = ["TOOLS", "app"]

#: tool name -> (main class, how the tool is told where the cluster is, and its client-config flag)
TOOLS: dict[str, tuple[str, str, str]] = {
    "console-consumer": ("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", "--consumer.config"),
    "console-producer": ("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", "--producer.config"),
    "topics": ("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", "--command-config"),
    "consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server",
        "--command-config",
    ),
    "get-offsets": ("org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server", "--command-config"),
    "producer-perf-test": ("org.apache.kafka.tools.ProducerPerformance", "--producer-props", "--producer.config"),
    "consumer-perf-test": ("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", "--consumer.config"),
}

app = typer.Typer(
    help="Kafka's own CLI tools (console consumer and producer, topics, perf tests) against corridor's cluster.",
    no_args_is_help=True,
)


def tool_command(settings: Settings, tool: str, args: list[str]) -> list[str]:
    """The full command line; the cluster address (and in secure mode the admin principal's client
    configuration) is added unless the caller gave one."""
    main_class, flag, config_flag = TOOLS[tool]
    access = settings.kafka(Role.ADMIN)
    if access.secure and config_flag not in args:
        folder = settings.security_material or settings.state_dir.resolve()
        args = [config_flag, str(write_client_properties(access, folder / "kafka-tools.properties")), *args]
    if flag == "--producer-props":
        # ProducerPerformance takes the address as one of its producer properties.
        if not any(a.startswith("bootstrap.servers=") for a in args):
            prop = f"bootstrap.servers={settings.bootstrap_servers}"
            at = args.index(flag) + 1 if flag in args else None
            args = [*args[:at], prop, *args[at:]] if at is not None else [*args, flag, prop]
    elif flag not in args and not any(a.startswith(flag + "=") for a in args):
        args = [flag, settings.bootstrap_servers, *args]
    return tools_argv(settings, main_class, args)


def _make(tool: str) -> None:
    @app.command(
        name=tool,
        help=f"Kafka's {TOOLS[tool][0].rsplit('.', 1)[-1]}; every argument is passed to it unchanged.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def run(ctx: typer.Context) -> None:
        argv = tool_command(ctx.obj, tool, list(ctx.args))
        os.execvp(argv[0], argv)


for _tool in TOOLS:
    _make(_tool)
