"""The ``vosx`` command line: thin typed commands that validate, call one function, print a summary.

Heavy libraries (torch, tensorflow, onnx) are imported inside commands so ``vosx --help`` is instant.
``VosxError`` becomes one line on stderr and exit 1 (re-raised when VOSX_RAISE_ERRORS=1).
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from vosx.errors import VosxError, raise_errors

app = typer.Typer(
    name="vosx",
    help="TrickVOS from a PyTorch checkpoint to a phone: export, segment, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def init(
    out: Annotated[Path, typer.Argument(help="Where to write the checkpoint (.pth).")],
    seed: Annotated[int, typer.Option(help="Random seed of the initialisation.")] = 0,
    tiny: Annotated[bool, typer.Option(help="Use the few-channel test config.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a randomly initialised checkpoint (for speed checks before training)."""
    from vosx.errors import ConfigError

    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force to overwrite it")
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory; give a file path such as {out / 'model.pth'}")
    import torch

    from vosx.model import TINY_CONFIG, ModelConfig, build_model, count_parameters, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(TINY_CONFIG if tiny else ModelConfig())
    save_checkpoint(model, out)
    typer.echo(f"wrote {out} ({count_parameters(model)['total']:,} parameters, seed {seed})")


@app.command()
def info(
    checkpoint: Annotated[Path, typer.Argument(help="A vosx checkpoint (.pth).")],
) -> None:
    """Print a checkpoint's config and its parameter count per part."""
    from rich.console import Console
    from rich.table import Table

    from vosx.model import count_parameters, load_checkpoint

    model = load_checkpoint(checkpoint)
    table = Table(title=f"{checkpoint}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for part, n in count_parameters(model).items():
        table.add_row(part, f"{n:,}")
    console = Console()
    console.print(table)
    for key, value in model.config.to_dict().items():
        console.print(f"{key} = {value}")


def main() -> None:
    """Console-script entry point: run the app, turning ``VosxError`` into one stderr line."""
    try:
        app()
    except VosxError as e:
        if raise_errors():
            raise
        print(f"vosx: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
