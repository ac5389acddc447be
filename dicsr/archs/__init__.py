"""Pure ``nn.Module`` networks, one file per architecture, no I/O.

State-dict key names deliberately equal the official implementations' key names, so official
checkpoints load without a renaming table (spectral-norm reparametrisations are folded by the
converter in :mod:`dicsr.loading`).
"""

from dicsr.archs.dic import DIC, DIC_PRESETS, DICConfig, DICOutput
from dicsr.archs.sparnet import SPARNET_PRESETS, SPARNet, SPARNetConfig

__all__ = ["DIC", "DIC_PRESETS", "SPARNET_PRESETS", "DICConfig", "DICOutput", "SPARNet", "SPARNetConfig"]
