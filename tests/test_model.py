"""The architecture: sizes, cost, shapes, the public methods and the key map."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from manet_zoo import MANet, manet
from manet_zoo.models.official import native_to_official_map, to_official_key
from manet_zoo.summary import summarize
from tests.helpers import official_keys


@pytest.fixture(scope="module")
def small_model() -> MANet:
    torch.manual_seed(0)
    return manet(num_classes=7).eval()


def test_parameter_count_matches_paper():
    model = manet(num_classes=7)
    assert sum(p.numel() for p in model.parameters()) == 50_547_214


def test_multiply_adds_at_224_match_paper():
    with torch.device("meta"):
        model = MANet(num_classes=7).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224, device="meta"))
    macs = counter.get_total_flops() / 2
    assert macs == pytest.approx(3.638e9, rel=0.01)


def test_summary_reports_measured_numbers():
    summary = summarize(input_size=224)
    assert summary.parameters == 50_547_214
    assert summary.macs == pytest.approx(3.638e9, rel=0.01)
    assert dict(summary.stages)["local branch (2x2 mosaic)"] == (512, 14, 14)
    assert dict(summary.stages)["global branch"] == (512, 7, 7)
    assert "50,547,214" in str(summary)


@pytest.mark.parametrize("size", [112, 160, (112, 160), 256])
def test_other_input_sizes_run(size):
    h, w = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        model = MANet(num_classes=5).eval()
        out = model(torch.zeros(2, 3, h, w))
    assert out.shape == (2, 5)


@pytest.mark.parametrize("shape", [(1, 3, 100, 100), (1, 3, 224, 200), (1, 3, 8, 8)])
def test_input_with_odd_feature_map_is_refused(small_model, shape):
    with pytest.raises(ValueError, match="even height and width"):
        small_model(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(3, 112, 112), (1, 1, 112, 112), (1, 4, 112, 112)])
def test_input_that_is_not_an_rgb_batch_is_refused(small_model, shape):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        small_model(torch.zeros(shape))


def test_forward_is_fused_branches_and_features_feed_heads(small_model):
    x = torch.rand(3, 3, 112, 112)
    with torch.no_grad():
        local, glob = small_model.forward_branches(x)
        fused = small_model(x)
        f_local, f_global = small_model.forward_features(x)
        head = small_model.forward_head(f_local, f_global)
    assert f_local.shape == f_global.shape == (3, 512)
    torch.testing.assert_close(fused, 0.6 * local + 0.4 * glob)
    torch.testing.assert_close(head, fused)
    torch.testing.assert_close(small_model.head_local(f_local), local)


def test_fusion_weight_changes_the_mix():
    torch.manual_seed(1)
    model = manet(num_classes=3, fusion_weight=1.0).eval()
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        local, _ = model.forward_branches(x)
        torch.testing.assert_close(model(x), local)
    with pytest.raises(ValueError, match="fusion_weight"):
        manet(fusion_weight=1.5)


def test_each_quadrant_has_its_own_weights_and_sees_only_its_region(small_model):
    """Changing the top-left quarter of the 1/8 feature map moves only the top-left
    region's output in the mosaic."""
    features = torch.rand(1, 128, 14, 14)
    changed = features.clone()
    changed[..., :7, :7] += 1.0
    with torch.no_grad():
        a = small_model.local_branch(features)
        b = small_model.local_branch(changed)
    diff = (a - b).abs().sum(dim=1)[0]
    half = diff.shape[-1] // 2
    assert diff[:half, :half].sum() > 0
    assert diff[half:, :].sum() == 0 and diff[:half, half:].sum() == 0
    regions = small_model.local_branch.regions
    assert regions["top_left"].layer3[0].conv1.weight.data_ptr() != (
        regions["bottom_right"].layer3[0].conv1.weight.data_ptr()
    )


def test_reset_classifier_replaces_both_heads(small_model):
    model = manet(num_classes=7)
    model.labels = tuple("abcdefg")
    model.reset_classifier(4)
    assert model.head_local.out_features == model.head_global.out_features == 4
    assert model.num_classes == 4 and model.labels is None
    assert model(torch.rand(1, 3, 112, 112)).shape == (1, 4)


def test_initialisation_follows_official_code():
    torch.manual_seed(0)
    model = manet(num_classes=7)
    conv = model.layer1[0].conv1.weight  # 64x64x3x3, fan_out = 576
    assert conv.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)
    bn = model.local_branch.regions["top_left"].layer3[0].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    spatial_bn = model.local_branch.regions["top_left"].layer3[0].cbam.spatial_gate.bn
    assert spatial_bn.momentum == 0.01 and spatial_bn.eps == 1e-5


def test_key_map_covers_the_official_layout_in_order():
    expected = official_keys()
    model = manet(num_classes=7)
    mapped = [(to_official_key(k), tuple(v.shape)) for k, v in model.state_dict().items()]
    assert mapped == expected


def test_key_map_is_a_bijection():
    forward = native_to_official_map()
    assert len(set(forward.values())) == len(forward) == len(official_keys())
