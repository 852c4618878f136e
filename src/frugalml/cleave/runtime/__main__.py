"""``python -m frugalml.cleave.runtime serve|worker|status``: the runtime's commands without the root CLI."""

import typer

from frugalml.cleave.runtime.cli import add_runtime_commands
from frugalml.common.errors import FrugalError

app = typer.Typer(
    help="cleave's networked runtime: parameter server and device workers over gRPC.",
    no_args_is_help=True,
    add_completion=False,
)
add_runtime_commands(app)


def main() -> None:
    """Run the commands; FrugalErrors become one line on stderr and exit code 2."""
    import sys

    try:
        app()
    except FrugalError as exc:
        print(f"cleave: error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
