"""The paper's model zoo (Table 2): real encoders through timm/open_clip, BigGAN-deep-256 through
``pytorch-pretrained-biggan``, StyleGAN2 in our own PyTorch code, StyleGAN-XL/StyleGAN3 from
trusted NVIDIA pickles. Importing this package registers them; weights never ship with the
package (see :mod:`.weights`).
"""

from __future__ import annotations

from ..registry import register_modules

register_modules(__name__, ("encoder_zoo", "biggan", "stylegan2_zoo", "pickled"))
