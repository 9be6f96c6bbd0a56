"""CLI behaviour: exit codes, one-line errors, and a --help that imports nothing heavy."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import run_cli

runner = CliRunner()


def test_help_is_light():
    code = (
        "import sys; from vosx.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'tensorflow', 'onnx', 'onnx2tf') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_init_and_info(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pth"
    assert run_cli(monkeypatch, "init", out, "--tiny", "--seed", "3") == 0
    assert "parameters" in capsys.readouterr().out
    assert run_cli(monkeypatch, "info", out) == 0
    text = capsys.readouterr().out
    for part in ("key_encoder", "value_encoder", "decoder", "total"):
        assert part in text


def test_init_refuses_existing_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pth"
    out.write_bytes(b"x")
    assert run_cli(monkeypatch, "init", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert out.read_bytes() == b"x"


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"garbage", "not a readable PyTorch checkpoint")],
)
def test_info_bad_checkpoint_one_line(tmp_path, monkeypatch, capsys, content, message):
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    assert run_cli(monkeypatch, "info", path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vosx: error: ") and str(path) in err[0] and message in err[0]


def test_missing_argument_is_usage_error():
    result = runner.invoke(__import__("vosx.cli", fromlist=["app"]).app, ["info"])
    assert result.exit_code == 2


def _commands() -> dict:
    """Every command of ``vosx`` -> the option names it declares (from click, not from the help)."""
    import typer

    from vosx.cli import app

    group = typer.main.get_command(app)
    return {
        name: [o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
        for name, cmd in group.commands.items()
    }


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_fits_80_columns(command):
    env = {**__import__("os").environ, "COLUMNS": "80"}
    cmd = [sys.executable, "-m", "vosx.cli", command, "--help"]
    text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    words = set(text.replace(",", " ").replace("/", " ").split())
    missing = [o for o in _commands()[command] if o not in words]
    assert not missing, f"option names cut or absent in `vosx {command} --help`: {missing}\n{text}"
    assert "…" not in text
