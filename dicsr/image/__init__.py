"""Pixels: decoding any input, resampling, building outputs in the caller's type, saving files."""

from dicsr.image._decode import *  # noqa: F403
from dicsr.image._decode import __all__  # noqa: F401
