"""The published SPARNet weights: SPARNet, SPARNet-Light and the two SPARNetHD generators."""

from __future__ import annotations

from dicsr.families._family import GITHUB_RELEASE, Fingerprint, Origin, ZooEntry

__all__ = ["ZOO"]

# docs/specs/sparnet.md §1: GitHub release v0.1.0 (since July 2023) and BaiduNetDisk; licence CC BY-NC-SA 4.0.
_RELEASE = "https://github.com/chaofengc/Face-SPARNet/releases/tag/v0.1.0"
_ASSETS = "https://github.com/chaofengc/Face-SPARNet/releases/download/v0.1.0"
_MIRRORS = ("https://pan.baidu.com/s/1zYimaAnIgMIKBf9KANpxog (extraction code 2nax)",)
_LICENSE = "CC BY-NC-SA 4.0"
_NOTICE = (
    "SPARNet weights (chaofengc/Face-SPARNet) are licensed CC BY-NC-SA 4.0: non-commercial use only, "
    "share-alike (https://creativecommons.org/licenses/by-nc-sa/4.0/)"
)


def _entry(
    *,
    name: str,
    preset: str,
    filename: str,
    training_data: str,
    description: str,
    fingerprint: Fingerprint | None = None,
) -> ZooEntry:
    return ZooEntry(
        name=name,
        preset=preset,
        official_filename=filename,  # docs/specs/sparnet.md §1: the names test.sh loads
        official_source=_RELEASE,
        training_data=training_data,
        license=_LICENSE,
        description=description,
        official_mirrors=_MIRRORS,
        origin=Origin(GITHUB_RELEASE, f"{_ASSETS}/{filename}"),
        official_fingerprint=fingerprint or Fingerprint(),
        license_notice=_NOTICE,
    )


ZOO: tuple[ZooEntry, ...] = (
    _entry(
        name="sparnet",
        preset="sparnet",
        filename="SPARNet-V16-S4-epoch20.pth",
        # The one published fingerprint of an official file so far (issue 10): its git blob id.
        fingerprint=Fingerprint(git_blob_sha1="d915f8a8f1c3c3423d6f3036bdf5e96caf2dc066"),
        training_data="CelebA",
        description="SPARNet (TIP 2021) released model: face attention units with 2-D spatial "
        "attention, 16 -> 128.",
    ),
    _entry(
        name="sparnet-light",
        preset="sparnet-light",
        filename="SPARNetLight_Attn3D-epoch20.pth",
        training_data="CelebA",
        description="SPARNet-Light-Attn3D: one body block with 3-D attention (5.2 M parameters), 16 -> 128.",
    ),
    _entry(
        name="sparnethd",
        preset="sparnethd-2d",
        filename="SPARNetHD_V4_Attn2D_net_H-epoch10.pth",
        training_data="FFHQ with synthetic degradations",
        description="SPARNetHD-Attn2D: blind restoration of 512 px FFHQ-aligned faces "
        "(GAN-trained, EMA weights).",
    ),
    _entry(
        name="sparnethd-3d",
        preset="sparnethd-3d",
        filename="SPARNetHD_V4_Attn3D_net_H-epoch10.pth",
        training_data="FFHQ with synthetic degradations",
        description="SPARNetHD-Attn3D: blind restoration of 512 px FFHQ-aligned faces with 3-D attention.",
    ),
)
