"""Pure ``nn.Module`` networks, one file per architecture, no I/O.

State-dict key names deliberately equal the official implementations' key names, so official
checkpoints load without a renaming table (spectral-norm reparametrisations are folded by the
converter in :mod:`dicsr.loading`).
"""
