"""Model cards: the ``README.md`` published beside each ``model.safetensors``.

A card is rendered from the folder's :class:`~dicsr.families.ModelConfig` (and what its family says
about itself) and, when the folder was made by ``dicsr convert``, a :class:`ConversionRecord`
naming the exact source file (sha256) so anyone can redo the conversion and compare bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dicsr.families import ModelConfig, get_family

__all__ = ["ConversionRecord", "render_model_card", "write_zoo_cards"]

# Hub licence identifiers (the card's YAML header), by the licence's name before any parenthesised
# holder ("MIT (Copyright ...)" is "mit"); anything unknown is "other" + the text.
_HUB_LICENSES = {"CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0", "MIT": "mit"}


@dataclass(frozen=True)
class ConversionRecord:
    """How a model folder was produced from an official checkpoint.

    Attributes:
        source_filename: file name of the official checkpoint.
        source_sha256: hex sha256 of that file.
        source_size: its size in bytes.
        layout: how the file stored the generator (``"'state_dict' entry of a training checkpoint"``).
        ignored: top-level entries of the file that were not converted (optimizers, discriminator).
        keys_converted: whether the family's key conversion changed any key (e.g. folded a
            spectral norm).
        num_tensors: tensors written to ``model.safetensors``.
        num_parameters: parameters of the network.
        dicsr_version: version of dicsr that converted it.
    """

    source_filename: str
    source_sha256: str
    source_size: int
    layout: str
    ignored: tuple[str, ...]
    keys_converted: bool
    num_tensors: int
    num_parameters: int
    dicsr_version: str


def render_model_card(config: ModelConfig, *, conversion: ConversionRecord | None = None) -> str:
    """The Markdown model card (with Hub YAML front matter) for a model folder."""
    family = get_family(config.arch)
    title = config.name or f"{config.arch} ({config.preset})"
    license_id = _HUB_LICENSES.get(config.license.split(" (", 1)[0].strip(), "other")
    lines = [
        "---",
        f"license: {license_id}",
        "library_name: dicsr",
        "pipeline_tag: image-to-image",
        "tags:",
        "- face-super-resolution",
        f"- {config.arch}",
        "---",
        "",
        f"# {title}",
        "",
    ]
    if config.description:
        lines += [config.description, ""]
    rows = [
        ("architecture", f"{family.display_name} generator, preset `{config.preset}`"),
        ("input", f"{config.lr_size}×{config.lr_size} RGB face"),
        ("output", f"{config.hr_size}×{config.hr_size} RGB face (×{config.scale})"),
        ("landmarks", str(config.num_landmarks) if config.num_landmarks else "none"),
        ("crop convention", f"`{config.crop}`: {family.crop_notes.get(config.crop, config.crop)}"),
        ("normalisation", f"`{json.dumps(dict(config.normalisation), sort_keys=True, ensure_ascii=False)}`"),
        ("training data", config.training_data or "unknown"),
        ("licence", config.license or "unknown"),
        ("official source", config.source or "unknown"),
    ]
    lines += ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows), ""]
    reference = config.name or "./this-folder"
    lines += [
        "## Usage",
        "",
        "```python",
        "from dicsr import load_model",
        "",
        f'model = load_model("{reference}")  # a NetworkAdapter: RGB in [0, 1] -> RGB in [0, 1]',
        "```",
        "",
        "Every input passes through the adapter's own normalisation; crop faces with the convention "
        "above for results that match the official numbers.",
        "",
        "## Provenance",
        "",
    ]
    lines += _provenance(family.key_conversion, conversion)
    lines += [
        "",
        "The licence of these weights is the licence of the official release; dicsr's own licence "
        "does not change it.",
        "",
    ]
    return "\n".join(lines)


def _provenance(key_conversion: str, conversion: ConversionRecord | None) -> list[str]:
    if conversion is None:
        converted = f", {key_conversion}" if key_conversion else ""
        return [
            "Converted from the official checkpoint with `dicsr convert` (strict load: every tensor "
            f"consumed, every shape checked{converted}). The card written by the conversion records "
            "the sha256 of the source file; see docs/conversion.md to redo it.",
        ]
    ignored = ", ".join(f"`{name}`" for name in conversion.ignored) or "nothing"
    return [
        f"Converted with dicsr {conversion.dicsr_version} by `dicsr convert`:",
        "",
        f"- source file: `{conversion.source_filename}` ({conversion.source_size:,} bytes)",
        f"- source sha256: `{conversion.source_sha256}`",
        f"- layout read: {conversion.layout}; ignored: {ignored}",
        f"- keys converted: {'yes' if conversion.keys_converted else 'no'}"
        + (f" ({key_conversion})" if conversion.keys_converted and key_conversion else ""),
        f"- strict load: {conversion.num_tensors} tensors, {conversion.num_parameters:,} parameters",
    ]


def write_zoo_cards(folder: str | Path) -> list[Path]:
    """Write ``<folder>/<name>/config.json`` and ``README.md`` for every registry entry.

    These are the files published beside each ``model.safetensors`` (the repository's ``zoo/``
    folder); a test checks the committed copies are up to date.
    """
    from dicsr._files import atomic_write_text
    from dicsr.weights._zoo import list_models

    written = []
    for entry in list_models():
        target = Path(folder) / entry.name
        target.mkdir(parents=True, exist_ok=True)
        config = entry.model_config()
        atomic_write_text(target / "config.json", config.to_json())
        atomic_write_text(target / "README.md", render_model_card(config))
        written.append(target)
    return written
