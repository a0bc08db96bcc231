"""The paper's model zoo (Table 2): real encoders through timm/open_clip, BigGAN-deep-256 through
``pytorch-pretrained-biggan``, StyleGAN2 in our own PyTorch code, StyleGAN-XL/StyleGAN3 from
trusted NVIDIA pickles. Importing this package registers them; weights never ship with the
package (see :mod:`.weights`).
"""

from __future__ import annotations

import importlib

#: modules that register models; each may be absent while it is being written
_MODULES = ("encoder_zoo", "biggan", "stylegan2_zoo", "pickled")

for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{_name}":
            raise
