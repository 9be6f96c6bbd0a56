"""Shapes, read-out and aggregation of the TrickVOS network (tiny config)."""

import math

import pytest
import torch

from vosx.errors import ConfigError
from vosx.model import TINY_CONFIG, ModelConfig, build_model, count_parameters
from vosx.model.memory import affinity, from_tokens, readout, soft_aggregate, to_tokens


def test_default_parameter_count_matches_paper():
    total = count_parameters(build_model(ModelConfig()))["total"]
    assert 1.6e6 <= total <= 2.2e6, total  # paper: 1.9M +- 0.3M


def test_method_shapes(tiny_model):
    cfg = TINY_CONFIG
    h, w = 4, 6
    with torch.no_grad():
        k = tiny_model.encode_key(torch.randn(2, 3, 64, 96))
        assert k.key.shape == (2, 1, h * w, cfg.key_dim)
        assert k.f16c.shape == (2, cfg.f16_dim, h, w)
        assert k.f8.shape[2:] == (8, 12) and k.f4.shape[2:] == (16, 24)
        v = tiny_model.encode_value(torch.rand(2, 1, 64, 96), k.f16)
        assert v.shape == (2, 1, h * w, cfg.value_dim)
        mk = torch.cat([k.key, k.key], 2)
        mv = torch.cat([v, v], 2)
        logits = tiny_model.segment(k.key, mk, mv, k.f16c, k.f8, k.f4)
        assert logits.shape == (2, 1, 64, 96)
    for t in (*k, v, logits):
        assert t.dim() <= 4


def test_forward_refuses_and_names_methods(tiny_model):
    with pytest.raises(RuntimeError, match="encode_key.*encode_value.*segment"):
        tiny_model(torch.zeros(1, 3, 64, 96))


def test_readout_matches_naive_loop():
    torch.manual_seed(1)
    ck, cv, m, n = 4, 3, 6, 5
    mk, qk, mv = torch.randn(1, 1, m, ck), torch.randn(1, 1, n, ck), torch.randn(1, 1, m, cv)
    out = readout(affinity(mk, qk), mv)[0, 0]  # N x CV
    for j in range(n):  # each query position
        logits = [
            (2 * mk[0, 0, i] @ qk[0, 0, j] - mk[0, 0, i] @ mk[0, 0, i]) / math.sqrt(ck)
            for i in range(m)
        ]
        wts = torch.softmax(torch.stack(logits), 0)
        expected = sum(wts[i] * mv[0, 0, i] for i in range(m))
        torch.testing.assert_close(out[j], expected, rtol=1e-5, atol=1e-6)


def test_duplicated_memory_frame_reads_out_the_same():
    torch.manual_seed(2)
    mk, qk, mv = torch.randn(1, 1, 5, 4), torch.randn(1, 1, 7, 4), torch.randn(1, 1, 5, 3)
    single = readout(affinity(mk, qk), mv)
    double = readout(affinity(torch.cat([mk, mk], 2), qk), torch.cat([mv, mv], 2))
    torch.testing.assert_close(single, double)


def test_soft_aggregate_sums_to_one_and_orders():
    prob = torch.rand(3, 2, 1, 8, 8)  # K x B x 1 x H x W
    agg = soft_aggregate(prob, dim=0)
    assert agg.shape == (4, 2, 1, 8, 8)
    torch.testing.assert_close(agg.sum(0), torch.ones(2, 1, 8, 8))
    # one confident object wins its pixels
    p = torch.tensor([0.99, 0.01]).view(2, 1)
    assert soft_aggregate(p, dim=0).argmax(0).item() == 1


def test_tokens_round_trip():
    x = torch.randn(2, 5, 3, 4)
    t = to_tokens(x)
    assert t.shape == (2, 1, 12, 5)
    torch.testing.assert_close(t[0, 0, 1 * 4 + 2], x[0, :, 1, 2])  # row-major positions
    torch.testing.assert_close(from_tokens(t, 3, 4), x)


def test_config_round_trip():
    cfg = ModelConfig(value_dim=32)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
