"""Convert an official DIC/DICGAN or SPARNet/SPARNetHD checkpoint and prove the result is exact.

    python examples/convert_official.py DIC_CelebA.pth models/dic-celeba --name dic-celeba

Writes a dicsr model folder (``model.safetensors``, ``config.json``, ``README.md``), then reloads
it and checks that every tensor equals the official checkpoint's (after SPARNetHD's spectral norm
is folded, the only change conversion makes) and that the reloaded network gives bit-identical
outputs. Exits with status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dicsr.weights import (
    convert_checkpoint,
    convert_official_checkpoint,
    convert_state_dict,
    detect_architecture,
    load_model_folder,
    read_official_checkpoint,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert an official checkpoint and verify it.")
    parser.add_argument("checkpoint", type=Path, help="official .pth file")
    parser.add_argument("output", type=Path, help="model folder to write")
    parser.add_argument("--name", default=None,
                        help="zoo entry of the weights, e.g. dicgan-celeba (DIC and DICGAN share a layout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)

    folder = convert_checkpoint(args.checkpoint, args.output, name=args.name, overwrite=args.overwrite)

    official = read_official_checkpoint(args.checkpoint)
    arch, preset, _ = detect_architecture(official)
    expected = convert_state_dict(official, arch)
    adapter = load_model_folder(folder)
    reloaded = adapter.network.state_dict()
    different = sorted(k for k in expected.keys() | reloaded.keys()
                       if k not in expected or k not in reloaded or not torch.equal(expected[k], reloaded[k]))

    # The folder must rebuild the same network *and* adapter (config.json): compare outputs with the
    # official checkpoint converted in memory.
    in_memory = convert_official_checkpoint(args.checkpoint, name=args.name).adapter
    lr = torch.rand(1, 3, adapter.lr_size, adapter.lr_size, generator=torch.Generator().manual_seed(0))
    same_output = torch.equal(in_memory(lr).images, adapter(lr).images)

    print(f"{args.checkpoint} -> {folder}: {arch} preset {preset!r}, {len(expected)} tensors")
    print(f"tensors identical: {not different}; outputs identical: {same_output}")
    for key in different[:10]:
        print(f"  differs: {key}")
    return 0 if not different and same_output else 1


if __name__ == "__main__":
    sys.exit(main())
