# SPDX-License-Identifier: Apache-2.0
"""Check the DFoT models against the official reference tensors (`tests/fixtures/dfot_reference`).

    python scripts/check_dfot_parity.py [--fixtures PATH]

Converts each official fixture state dict with `convert_dfot_checkpoint`, runs it on the fixture's inputs and prints
the max abs difference to the official output. Exits 1 when a difference exceeds `--tolerance` or no fixture is found.
The test suite asserts the same parity (tests/test_transformer_dfot.py, tests/test_uvit_dfot.py); this script is for a
quick look on any machine.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


IN_REPO_FIXTURES = REPO / "tests" / "fixtures" / "dfot_reference"


def find_reference_fixtures() -> Path | None:
    """The DFoT reference tensors: `$SYN2SEQ_SHARED_DIR/fixtures/dfot_reference` when that variable is set, else the
    copy shipped in the repository (`tests/fixtures/dfot_reference`)."""
    if os.environ.get("SYN2SEQ_SHARED_DIR"):
        folder = Path(os.environ["SYN2SEQ_SHARED_DIR"]) / "fixtures" / "dfot_reference"
        return folder if folder.is_dir() else None
    return IN_REPO_FIXTURES if IN_REPO_FIXTURES.is_dir() else None


def load_fixture(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict, dict[str, torch.Tensor]]:
    """`(tensors, backbone config, state dict)` of one official fixture (`name.safetensors` + `name.json`).

    The repository's copy of `uvit3d_pose` leaves out its input ray encoding, which is the `ray_encoding` of
    `camera_rays` (the same tensor, 2.9 MB); it is put back here, so both copies load the same tensors.
    """
    from safetensors.torch import load_file

    tensors = load_file(str(folder / f"{name}.safetensors"))
    if name == "uvit3d_pose" and "input.external_cond" not in tensors:
        rays = load_file(str(folder / "camera_rays.safetensors"))["ray_encoding"]  # (B, T, H, W, 180)
        tensors["input.external_cond"] = rays.permute(0, 1, 4, 2, 3).contiguous()  # (B, T, 180, H, W)
    config = json.loads((folder / f"{name}.json").read_text())
    state_dict = {k[len("state_dict.") :]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return tensors, config, state_dict


def official_output(model, tensors: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    """Our `(B, C, F, H, W)` model on a fixture's official `(B, T, C, H, W)` inputs, returned as `(B, T, C, H, W)`:
    a 5-D external condition is the per-pixel ray map, a lower-dimensional one the per-frame condition vector."""
    if "input.external_cond" in tensors:
        cond = tensors["input.external_cond"]
        if cond.ndim == 5:  # per-pixel ray encoding (B, T, 180, H, W) -> (B, 180, T, H, W)
            kwargs.setdefault("camera_rays", cond.transpose(1, 2))
        else:
            kwargs.setdefault("condition", cond)
    with torch.no_grad():
        out = model(tensors["input.x"].transpose(1, 2), tensors["input.noise_levels"], **kwargs).sample
    return out.transpose(1, 2)


def check_reference_parity(folder: Path) -> dict[str, float]:
    """Convert each official fixture state dict and return the max abs difference to the official output."""
    from diffusers_syn2seq.models import convert_dfot_checkpoint

    results = {}
    for name in ("dit3d_discrete", "dit3d_external_cond", "dit3d_continuous", "uvit3d_pose"):
        if not (folder / f"{name}.safetensors").is_file():
            continue
        tensors, config, state_dict = load_fixture(folder, name)
        model = convert_dfot_checkpoint(state_dict, config)
        results[name] = (official_output(model, tensors) - tensors["output"]).abs().max().item()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=None,
                        help="folder of the reference tensors (default: $SYN2SEQ_SHARED_DIR/fixtures/dfot_reference "
                             "when set, else tests/fixtures/dfot_reference)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted max abs difference")
    args = parser.parse_args(argv)
    folder = args.fixtures or find_reference_fixtures()
    if folder is None or not folder.is_dir():
        print(f"check_dfot_parity: error: DFoT reference fixtures not found at {folder or IN_REPO_FIXTURES} (pass "
              "--fixtures PATH)", file=sys.stderr)
        return 1
    results = check_reference_parity(folder)
    for name, diff in results.items():
        print(f"parity with the official DFoT backbone, {name:<20}: max abs difference {diff:.2e}")
    return 0 if results and max(results.values()) <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
