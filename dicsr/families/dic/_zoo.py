"""The published DIC / DICGAN weights: four official checkpoints of the one ``dic`` preset."""

from __future__ import annotations

from dicsr.families._family import GOOGLE_DRIVE, Origin, ZooEntry

__all__ = ["ZOO"]

_REPOSITORY = "https://github.com/Maclory/Deep-Iterative-Collaboration"
# docs/specs/dic.md §4: the README's Google Drive / Baidu folders ("models"); file names are not in the
# README.
_DRIVE = "https://drive.google.com/open?id=1Q1T1smMDRMO1NcjkxbZvotOX93YIVp5e"
_MIRRORS = ("https://pan.baidu.com/s/14zJ_lY8iFmk3csHYZmut7Q (extraction code 6qhx)", _REPOSITORY)
# The README's Drive link is this shared folder; the checkpoints sit in its "models" sub-folder.
_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1Q1T1smMDRMO1NcjkxbZvotOX93YIVp5e"
# The repository's LICENSE file: the MIT licence, "Copyright (c) 2021 Cheng Ma".
_LICENSE = "MIT (Copyright (c) 2021 Cheng Ma)"


def _entry(*, name: str, filename: str, training_data: str, description: str) -> ZooEntry:
    return ZooEntry(
        name=name,
        preset="dic",
        # docs/specs/dic.md §4: probable released names (README/issues), not verified against the Drive
        # folder.
        official_filename=filename,
        official_source=_DRIVE,
        training_data=training_data,
        license=_LICENSE,
        description=description,
        official_mirrors=_MIRRORS,
        origin=Origin(GOOGLE_DRIVE, _DRIVE_FOLDER, f"models/{filename}"),
    )


ZOO: tuple[ZooEntry, ...] = (
    _entry(
        name="dic-celeba",
        filename="DIC_CelebA.pth",
        training_data="CelebA",
        description="DIC (CVPR 2020): 8x face super-resolution with 68-landmark collaboration, "
        "trained with L1 + heatmap losses.",
    ),
    _entry(
        name="dicgan-celeba",
        filename="DICGAN_CelebA.pth",
        training_data="CelebA",
        description="DICGAN: the DIC generator fine-tuned with feature and adversarial losses "
        "(sharper, lower PSNR).",
    ),
    _entry(
        name="dic-helen",
        filename="DIC_Helen.pth",
        training_data="Helen",
        description="DIC (CVPR 2020) trained on Helen: 8x face super-resolution with 68 landmarks.",
    ),
    _entry(
        name="dicgan-helen",
        filename="DICGAN_Helen.pth",
        training_data="Helen",
        description="DICGAN trained on Helen: the DIC generator with feature and adversarial losses.",
    ),
)
