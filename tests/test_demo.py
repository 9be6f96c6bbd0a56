"""`vosx demo` end to end on the tiny checkpoint (the bundled clips resized to a 64x96 export)."""

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_writes_every_artifact(tiny_ckpt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo"
    args = ("demo", "-o", out, "--checkpoint", tiny_ckpt, "--size", "64x96")
    assert run_cli(monkeypatch, *args) == 0, capsys.readouterr().err
    for name in ("report.md", "report.html", "overlay.gif", "bench.png", "bench.json"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "segment").glob("*.png"))) == 30  # the bundled real clip
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["jf"]) == {"none", "cv", "pt"}
    assert all(0.0 <= s["J&F-Mean"] <= 1.0 for s in summary["jf"].values())
    assert {r["precision"] for r in summary["bench"]} >= {"fp32", "fp16"}
    html = (out / "report.html").read_text()
    assert "data:image/gif;base64," in html and "DAVIS J&amp;F" in html
    assert "J&F with tracker cv" in capsys.readouterr().out
    # a second run refuses to overwrite without --force, in one line
    code = run_cli(monkeypatch, *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--force" in err[0]


@pytest.mark.slow
def test_demo_on_another_clip(tiny_ckpt, tmp_path, monkeypatch, capsys):
    from vosx.paths import SYNTHETIC_CLIP

    out = tmp_path / "demo"
    args = ("demo", "-o", out, "--checkpoint", tiny_ckpt, "--size", "64x96")
    assert run_cli(monkeypatch, *args, "--clip", SYNTHETIC_CLIP) == 0, capsys.readouterr().err
    assert len(list((out / "segment").glob("*.png"))) == 12
