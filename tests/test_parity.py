"""Parity with the official MA-Net code: the same weights give the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from manet_zoo import manet
from tests.helpers import REFERENCE_DIR

EXPECTED = json.loads((REFERENCE_DIR / "parity_expected.json").read_text())["seeds"]["0"]


@pytest.fixture(scope="module")
def branch_logits(converted_weights, parity_input):
    model = manet(weights=converted_weights)
    with torch.no_grad():
        return model.forward_branches(parity_input), model(parity_input)


@pytest.mark.parametrize(("index", "key"), [(0, "local_logits_fc_1"), (1, "global_logits_fc_2")])
def test_branch_logits_match_official_code(branch_logits, index, key):
    expected = torch.tensor(EXPECTED[key], dtype=torch.float32)
    torch.testing.assert_close(branch_logits[0][index], expected, rtol=1e-4, atol=1e-3)


def test_fused_logits_match_official_code(branch_logits):
    expected = torch.tensor(EXPECTED["fused_0.6"], dtype=torch.float32)
    torch.testing.assert_close(branch_logits[1], expected, rtol=1e-4, atol=1e-3)


def test_fused_logits_are_the_weighted_sum_of_the_branches(branch_logits):
    (local, glob), fused = branch_logits
    torch.testing.assert_close(fused, 0.6 * local + 0.4 * glob)
