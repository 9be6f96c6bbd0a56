"""Tests of Trick 1's hybrid loss: hand-computed cases, zeros, gradients."""

import math

import numpy as np
import pytest
import torch

from vosx.training.losses import (
    SSIM_C1,
    SSIM_C2,
    LossWeights,
    ce_loss,
    gaussian_window,
    hybrid_loss,
    iou_loss,
    ssim_loss,
    ssim_map,
)


def _maps(*arrays) -> torch.Tensor:
    """Stack H x W lists into 1 x K x H x W float tensors."""
    return torch.tensor(np.stack(arrays), dtype=torch.float32)[None]


def test_gaussian_window_is_basnet_window():
    w = gaussian_window()
    assert w.shape == (11, 11)
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    np.testing.assert_allclose(w.numpy(), np.outer(g, g), rtol=1e-6)


def test_identical_maps_give_zero_ssim_and_iou_loss():
    torch.manual_seed(0)
    gt = (torch.rand(2, 3, 20, 24) > 0.5).float()
    valid = torch.ones(2, 3, dtype=torch.bool)
    assert float(ssim_loss(gt, gt, valid)) == pytest.approx(0.0, abs=1e-6)
    assert float(iou_loss(gt, gt, valid)) == pytest.approx(0.0, abs=1e-7)
    soft = torch.rand(2, 3, 20, 24)
    assert float(ssim_loss(soft, soft, valid)) == pytest.approx(0.0, abs=1e-6)


def test_iou_loss_hand_computed():
    p = _maps([[1.0, 0.0], [0.5, 0.0]])
    g = _maps([[1.0, 1.0], [0.0, 0.0]])
    # intersection 1, union (1) + (1) + (0.5) + 0 = 2.5, smoothed by 1 pixel
    expected = 1 - (1 + 1) / (2.5 + 1)
    assert float(iou_loss(p, g, torch.ones(1, 1, dtype=torch.bool))) == pytest.approx(expected)


def test_ssim_of_a_single_pixel_hand_computed():
    # A 1 x 1 map with zero padding: every statistic is a multiple of the window's centre weight.
    a, b = 0.8, 0.3
    g1 = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w0 = (g1[5] / g1.sum()) ** 2
    mu_x, mu_y = a * w0, b * w0
    var_x, var_y = a * a * w0 - mu_x**2, b * b * w0 - mu_y**2
    cov = a * b * w0 - mu_x * mu_y
    expected = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    )
    got = ssim_map(torch.full((1, 1, 1, 1), a), torch.full((1, 1, 1, 1), b))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_ssim_matches_a_direct_numpy_sum():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(7, 9)), rng.uniform(size=(7, 9))
    w = gaussian_window().double().numpy()
    xp, yp = np.pad(x, 5), np.pad(y, 5)
    ref = np.empty_like(x)
    for i in range(7):
        for j in range(9):
            px, py = xp[i : i + 11, j : j + 11], yp[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
            c = (w * px * py).sum() - mx * my
            ref[i, j] = (
                (2 * mx * my + SSIM_C1)
                * (2 * c + SSIM_C2)
                / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
            )
    got = ssim_map(torch.tensor(x)[None, None].float(), torch.tensor(y)[None, None].float())
    np.testing.assert_allclose(got[0, 0].numpy(), ref, rtol=1e-4, atol=1e-5)


def test_ce_over_aggregated_classes_hand_computed():
    # One object with p = 0.75 everywhere: aggregation gives p^2 / (p^2 + (1-p)^2) = 0.9.
    prob = torch.full((1, 1, 2, 2), 0.75)
    target = torch.tensor([[[1, 1], [0, 0]]])
    valid = torch.ones(1, 1, dtype=torch.bool)
    terms = hybrid_loss(prob, target, valid, LossWeights(ce=1, ssim=0, iou=0))
    expected = -(2 * math.log(0.9) + 2 * math.log(0.1)) / 4
    assert float(terms.ce) == pytest.approx(expected, rel=1e-5)
    assert float(terms.total) == pytest.approx(expected, rel=1e-5)
    agg = torch.tensor([[[[0.25]], [[0.75]]]])
    assert float(ce_loss(agg, torch.tensor([[[1]]]))) == pytest.approx(-math.log(0.75), rel=1e-6)


def test_gradients_are_finite_on_empty_masks():
    logits = torch.full((2, 2, 16, 16), -30.0, requires_grad=True)  # sigmoid ~ 0
    prob = torch.sigmoid(logits)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    valid = torch.ones(2, 2, dtype=torch.bool)
    terms = hybrid_loss(prob, target, valid, LossWeights())
    terms.total.backward()
    assert torch.isfinite(terms.total)
    assert torch.isfinite(logits.grad).all()
    zeros = torch.zeros(1, 1, 8, 8, requires_grad=True)
    loss = iou_loss(zeros, torch.zeros(1, 1, 8, 8), valid[:1, :1]) + ssim_loss(
        zeros, torch.zeros(1, 1, 8, 8), valid[:1, :1]
    )
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(zeros.grad).all()


def test_switching_terms_off():
    torch.manual_seed(1)
    prob = torch.rand(2, 2, 12, 16)
    target = torch.randint(0, 3, (2, 12, 16))
    valid = torch.ones(2, 2, dtype=torch.bool)
    full = hybrid_loss(prob, target, valid, LossWeights())
    assert float(full.total) == pytest.approx(float(full.ce + full.ssim + full.iou), rel=1e-6)
    no_ce = hybrid_loss(prob, target, valid, LossWeights(ce=0))
    assert float(no_ce.ce) == 0.0
    assert float(no_ce.total) == pytest.approx(float(full.ssim + full.iou), rel=1e-6)
    weighted = hybrid_loss(prob, target, valid, LossWeights(ce=2, ssim=0.5, iou=0))
    assert float(weighted.total) == pytest.approx(float(2 * full.ce + 0.5 * full.ssim), rel=1e-6)
    with pytest.raises(ValueError, match="all loss weights are 0"):
        LossWeights(0, 0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(ce=-1)


def test_missing_object_slots_do_not_count():
    torch.manual_seed(2)
    prob1 = torch.rand(1, 1, 12, 16)
    target = (torch.rand(1, 12, 16) > 0.6).long()
    one = hybrid_loss(prob1, target, torch.ones(1, 1, dtype=torch.bool), LossWeights())
    prob2 = torch.cat([prob1, torch.rand(1, 1, 12, 16)], 1)  # slot 2 holds garbage
    two = hybrid_loss(prob2, target, torch.tensor([[True, False]]), LossWeights())
    for a, b in zip(one, two, strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-5, abs=1e-7)


def test_better_predictions_have_lower_loss():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:12, 4:12] = 1
    valid = torch.ones(1, 1, dtype=torch.bool)
    good = (target[:, None] == 1).float() * 0.9 + 0.05
    bad = torch.full((1, 1, 16, 16), 0.5)
    lg = hybrid_loss(good, target, valid, LossWeights())
    lb = hybrid_loss(bad, target, valid, LossWeights())
    assert lg.ce < lb.ce and lg.ssim < lb.ssim and lg.iou < lb.iou
