"""``ordergate completion SHELL``: the shell completion script of the command line."""
from __future__ import annotations

import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (commands, options, choices and paths).

    \b
    Examples:
      eval "$(ordergate completion bash)"          # in ~/.bashrc
      ordergate completion fish > ~/.config/fish/completions/ordergate.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    complete = get_completion_class(shell)
    if complete is None:  # not reached: the choice admits only the shells click knows
        raise click.UsageError(f"no completion script for {shell}")
    source = complete(root, {}, "ordergate", "_ORDERGATE_COMPLETE").source()
    click.echo(source)


def register(group: click.Group) -> None:
    group.add_command(completion)
