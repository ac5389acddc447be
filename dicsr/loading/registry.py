"""The model zoo as data: one :class:`ModelEntry` per published set of weights.

Each entry says what the weights are (architecture, preset, sizes, crop, training data, licence),
where dicsr downloads them (a Hugging Face Hub repository at a pinned revision, with the sha256 of
``model.safetensors`` once published) and where the official checkpoint they were converted from
comes from (:class:`Origin`, with whatever :class:`~dicsr.weights._fingerprint.Fingerprint` of
that file is published), so dicsr can fetch and convert it itself and a user can always rebuild
them with ``dicsr convert``.

Publication status: the converted weights are not published yet. Every entry points at the
placeholder repository ``dicsr/<name>`` at tag ``v1`` with ``sha256=None``; publishing (see
docs/model-zoo.md) means uploading the folder, tagging the commit ``v1``, then replacing the tag
with the 40-hex commit and filling ``sha256``/``size`` here. Until then a download of a registry
name is fetched from a mirror or the official origin and converted into the dicsr cache
(``dicsr.weights._origins``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from dicsr.config import ModelConfig
from dicsr.errors import ModelNotFoundError
from dicsr.weights._fingerprint import Fingerprint

__all__ = [
    "GITHUB_RELEASE",
    "GOOGLE_DRIVE",
    "HUB_ORGANISATION",
    "PLACEHOLDER_REVISION",
    "ModelEntry",
    "Origin",
    "get_model_entry",
    "list_models",
]

#: Hub organisation the converted weights are published under (placeholder until publication).
HUB_ORGANISATION = "dicsr"
#: Tag every entry is pinned to until real commits exist; replace by the 40-hex commit when publishing.
PLACEHOLDER_REVISION = "v1"

_DIC_REPOSITORY = "https://github.com/Maclory/Deep-Iterative-Collaboration"
# dic.md §4: the README's Google Drive / Baidu folders ("models"); file names are not in the README.
_DIC_DRIVE = "https://drive.google.com/open?id=1Q1T1smMDRMO1NcjkxbZvotOX93YIVp5e"
_DIC_MIRRORS = ("https://pan.baidu.com/s/14zJ_lY8iFmk3csHYZmut7Q (extraction code 6qhx)", _DIC_REPOSITORY)
# The repository's LICENSE file: the MIT licence, "Copyright (c) 2021 Cheng Ma".
_DIC_LICENSE = "MIT (Copyright (c) 2021 Cheng Ma)"
# The README's Drive link is this shared folder; the checkpoints sit in its "models" sub-folder.
_DIC_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1Q1T1smMDRMO1NcjkxbZvotOX93YIVp5e"
# sparnet.md §1: GitHub release v0.1.0 (since July 2023) and BaiduNetDisk; licence CC BY-NC-SA 4.0.
_SPARNET_RELEASE = "https://github.com/chaofengc/Face-SPARNet/releases/tag/v0.1.0"
_SPARNET_ASSETS = "https://github.com/chaofengc/Face-SPARNet/releases/download/v0.1.0"
_SPARNET_MIRRORS = ("https://pan.baidu.com/s/1zYimaAnIgMIKBf9KANpxog (extraction code 2nax)",)
_SPARNET_LICENSE = "CC BY-NC-SA 4.0"
_SPARNET_NOTICE = (
    "SPARNet weights (chaofengc/Face-SPARNet) are licensed CC BY-NC-SA 4.0: non-commercial use only, "
    "share-alike (https://creativecommons.org/licenses/by-nc-sa/4.0/)"
)
# Published fingerprints of official files, by file name (checked after every download). The one
# known so far (issue 10): the git blob id of SPARNet-V16-S4-epoch20.pth.
_OFFICIAL_FINGERPRINTS = {
    "SPARNet-V16-S4-epoch20.pth": Fingerprint(git_blob_sha1="d915f8a8f1c3c3423d6f3036bdf5e96caf2dc066"),
}

#: :attr:`Origin.kind` of a GitHub release asset (plain HTTPS download, redirected to a CDN).
GITHUB_RELEASE = "github-release"
#: :attr:`Origin.kind` of a file in a shared Google Drive folder (fetched with gdown).
GOOGLE_DRIVE = "google-drive"


@dataclass(frozen=True)
class Origin:
    """Where the official checkpoint is published, as dicsr downloads it.

    Attributes:
        kind: :data:`GITHUB_RELEASE` (``url`` is the asset's download URL) or :data:`GOOGLE_DRIVE`
            (``url`` is the shared folder, ``path`` the file's path inside it).
        url: see ``kind``.
        path: path of the file inside a Drive folder (``"models/DIC_CelebA.pth"``).
    """

    kind: str
    url: str
    path: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One published model: what it is, where dicsr gets it, and where it originally comes from.

    Attributes:
        name: zoo name users type (``"dic-celeba"``).
        arch: architecture family (``"dic"`` or ``"sparnet"``).
        preset: released configuration of that architecture.
        hub_repo: Hugging Face Hub repository holding ``config.json`` + ``model.safetensors``.
        revision: pinned revision (a 40-hex commit once published; the tag ``v1`` until then).
        filename: weights file in the repository.
        sha256: hex sha256 of the weights file, verified after every download; ``None`` if unknown.
        size: byte size of the weights file, or ``None`` if unknown.
        license: licence of the official weights.
        lr_size: side of the low-resolution face the model takes.
        hr_size: side of the restored face.
        crop: face-crop convention (``dicsr.config.CropConvention``).
        training_data: data set the official weights were trained on.
        official_source: where the official checkpoint is downloaded from.
        official_filename: the official checkpoint's file name (to pass to ``dicsr convert``).
        description: one-line summary.
        official_mirrors: other official download locations.
        origin: where dicsr itself downloads the official checkpoint from.
        official_fingerprint: what is published about the official checkpoint (checked after
            every download of it).
        license_notice: logged once when the weights are first downloaded (terms a user must
            know before using them), or ``None``.
    """

    name: str
    arch: str
    preset: str
    hub_repo: str
    revision: str
    filename: str
    sha256: str | None
    size: int | None
    license: str
    lr_size: int
    hr_size: int
    crop: str
    training_data: str
    official_source: str
    official_filename: str
    description: str
    official_mirrors: tuple[str, ...] = ()
    origin: Origin | None = None
    official_fingerprint: Fingerprint = field(default_factory=Fingerprint)
    license_notice: str | None = None

    @property
    def hub_reference(self) -> str:
        """The pinned ``hf-hub:org/repo@revision`` reference of these weights."""
        return f"hf-hub:{self.hub_repo}@{self.revision}"

    def model_config(self) -> ModelConfig:
        """The ``config.json`` published beside these weights."""
        from dicsr.loading.presets import model_config_for

        return model_config_for(
            self.arch,
            self.preset,
            name=self.name,
            description=self.description,
            training_data=self.training_data,
            license=self.license,
            source=self.official_source,
        )

    def how_to_obtain(self) -> str:
        """Instructions for getting these weights without the hub (used in error messages)."""
        return (
            f"download the official checkpoint {self.official_filename} from {self.official_source}, "
            f"convert it with `dicsr convert {self.official_filename} ./{self.name} --name {self.name}` "
            f"and load the folder ('./{self.name}'), or pass any local model folder"
        )


def _dic(*, name: str, filename: str, training_data: str, description: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        arch="dic",
        preset="dic",
        hub_repo=f"{HUB_ORGANISATION}/{name}",
        revision=PLACEHOLDER_REVISION,
        filename="model.safetensors",
        sha256=None,
        size=None,
        license=_DIC_LICENSE,
        lr_size=16,
        hr_size=128,
        crop="dic_square",
        training_data=training_data,
        official_source=_DIC_DRIVE,
        # dic.md §4: probable released names (README/issues), not verified against the Drive folder.
        official_filename=filename,
        description=description,
        official_mirrors=_DIC_MIRRORS,
        origin=Origin(GOOGLE_DRIVE, _DIC_DRIVE_FOLDER, f"models/{filename}"),
        official_fingerprint=_OFFICIAL_FINGERPRINTS.get(filename, Fingerprint()),
    )


def _sparnet(
    *, name: str, preset: str, filename: str, size: int, training_data: str, description: str
) -> ModelEntry:
    return ModelEntry(
        name=name,
        arch="sparnet",
        preset=preset,
        hub_repo=f"{HUB_ORGANISATION}/{name}",
        revision=PLACEHOLDER_REVISION,
        filename="model.safetensors",
        sha256=None,
        size=None,
        license=_SPARNET_LICENSE,
        lr_size=size if preset.startswith("sparnethd") else 16,
        hr_size=size,
        crop="ffhq" if preset.startswith("sparnethd") else "sparnet_square",
        training_data=training_data,
        official_source=_SPARNET_RELEASE,
        official_filename=filename,  # sparnet.md §1: the names test.sh loads
        description=description,
        official_mirrors=_SPARNET_MIRRORS,
        origin=Origin(GITHUB_RELEASE, f"{_SPARNET_ASSETS}/{filename}"),
        official_fingerprint=_OFFICIAL_FINGERPRINTS.get(filename, Fingerprint()),
        license_notice=_SPARNET_NOTICE,
    )


_ENTRIES: tuple[ModelEntry, ...] = (
    _dic(
        name="dic-celeba",
        filename="DIC_CelebA.pth",
        training_data="CelebA",
        description="DIC (CVPR 2020): 8x face super-resolution with 68-landmark collaboration, "
        "trained with L1 + heatmap losses.",
    ),
    _dic(
        name="dicgan-celeba",
        filename="DICGAN_CelebA.pth",
        training_data="CelebA",
        description="DICGAN: the DIC generator fine-tuned with feature and adversarial losses "
        "(sharper, lower PSNR).",
    ),
    _dic(
        name="dic-helen",
        filename="DIC_Helen.pth",
        training_data="Helen",
        description="DIC (CVPR 2020) trained on Helen: 8x face super-resolution with 68 landmarks.",
    ),
    _dic(
        name="dicgan-helen",
        filename="DICGAN_Helen.pth",
        training_data="Helen",
        description="DICGAN trained on Helen: the DIC generator with feature and adversarial losses.",
    ),
    _sparnet(
        name="sparnet",
        preset="sparnet",
        filename="SPARNet-V16-S4-epoch20.pth",
        size=128,
        training_data="CelebA",
        description="SPARNet (TIP 2021) released model: face attention units with 2-D spatial "
        "attention, 16 -> 128.",
    ),
    _sparnet(
        name="sparnet-light",
        preset="sparnet-light",
        filename="SPARNetLight_Attn3D-epoch20.pth",
        size=128,
        training_data="CelebA",
        description="SPARNet-Light-Attn3D: one body block with 3-D attention (5.2 M parameters), 16 -> 128.",
    ),
    _sparnet(
        name="sparnethd",
        preset="sparnethd-2d",
        filename="SPARNetHD_V4_Attn2D_net_H-epoch10.pth",
        size=512,
        training_data="FFHQ with synthetic degradations",
        description="SPARNetHD-Attn2D: blind restoration of 512 px FFHQ-aligned faces "
        "(GAN-trained, EMA weights).",
    ),
    _sparnet(
        name="sparnethd-3d",
        preset="sparnethd-3d",
        filename="SPARNetHD_V4_Attn3D_net_H-epoch10.pth",
        size=512,
        training_data="FFHQ with synthetic degradations",
        description="SPARNetHD-Attn3D: blind restoration of 512 px FFHQ-aligned faces with 3-D attention.",
    ),
)
_BY_NAME = {entry.name: entry for entry in _ENTRIES}


def list_models() -> list[ModelEntry]:
    """Every model in the zoo, in documentation order."""
    return list(_ENTRIES)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_model_entry(name: str) -> ModelEntry:
    """The zoo entry called ``name`` (case and ``_``/``-`` are ignored: ``DIC_CelebA`` works).

    Raises:
        ModelNotFoundError: no such entry; the message suggests close names.
    """
    entry = _BY_NAME.get(_normalise(name))
    if entry is not None:
        return entry
    suggestions = difflib.get_close_matches(_normalise(name), list(_BY_NAME), n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
    raise ModelNotFoundError(
        f"no model named {name!r} in the dicsr zoo{hint}; known models: {', '.join(_BY_NAME)}"
    )
