# SPDX-License-Identifier: Apache-2.0
"""The DFoT reference fixtures shipped in `tests/fixtures/dfot_reference` load complete, and equal the project's
shared copy tensor for tensor whenever that copy is present."""

import os
from pathlib import Path

import pytest
import torch
from conftest import IN_REPO_FIXTURES, REPO_ROOT
from safetensors.torch import load_file
from script_loading import load_script

PARITY = load_script("scripts/check_dfot_parity.py")
NETWORKS = ("dit3d_discrete", "dit3d_external_cond", "dit3d_continuous", "uvit3d_pose")
SHARED = Path(os.environ.get("SYN2SEQ_SHARED_DIR", REPO_ROOT.parent / "shared")) / "fixtures" / "dfot_reference"


def test_in_repo_fixtures_are_found_by_default_and_restore_the_uvit_input():
    if not os.environ.get("SYN2SEQ_SHARED_DIR"):
        assert PARITY.find_reference_fixtures() == IN_REPO_FIXTURES
    tensors, config, state_dict = PARITY.load_fixture(IN_REPO_FIXTURES, "uvit3d_pose")
    rays = load_file(IN_REPO_FIXTURES / "camera_rays.safetensors")["ray_encoding"]
    assert tensors["input.external_cond"].shape == (1, 4, 180, 32, 32)
    assert torch.equal(tensors["input.external_cond"], rays.permute(0, 1, 4, 2, 3))
    assert config["backbone_config"]["name"] == "u_vit3d_pose" and state_dict


@pytest.mark.skipif(not SHARED.is_dir(), reason="the project's shared fixtures are not next to this clone")
@pytest.mark.parametrize("name", NETWORKS)
def test_in_repo_fixtures_equal_the_shared_copy(name):
    ours, our_config, _ = PARITY.load_fixture(IN_REPO_FIXTURES, name)
    theirs, their_config, _ = PARITY.load_fixture(SHARED, name)
    assert our_config == their_config and sorted(ours) == sorted(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the project's shared fixtures are not next to this clone")
@pytest.mark.parametrize("name", ("camera_rays", "noise_schedules", "pose_interpolation"))
def test_in_repo_geometry_and_schedule_fixtures_equal_the_shared_copy(name):
    ours, theirs = load_file(IN_REPO_FIXTURES / f"{name}.safetensors"), load_file(SHARED / f"{name}.safetensors")
    assert sorted(ours) == sorted(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs)
