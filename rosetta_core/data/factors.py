"""The world's ground truth as named factor masks, the vocabulary that concepts are labelled with
(Network Dissection's "concepts", here called factors to keep them apart from mined concepts).

For a batch of :class:`~.shapes.Scenes`, :func:`factor_masks` returns one boolean mask per
factor and scene, at the image's resolution:

- ``object``: pixels of any visible object;
- ``kind:<k>`` for every shape kind the world draws (``WorldConfig.kinds``);
- ``colour:<c>`` for every colour the world draws (``WorldConfig.colours``);
- ``contour``: object pixels next to another object or the background (``Scenes.contour``);
- ``shadow``: cast shadow on visible background (``Scenes.shadow``);
- ``background``: pixels of no object;
- ``slot:<j>``: the visible pixels of the j-th object drawn (slot j of the scene code; later
  slots are drawn over earlier ones). A generator conditioned on the scene code, such as
  mini-gen, sees the slots apart, so a unit may follow one slot whatever its kind and colour.
"""

from __future__ import annotations

import numpy as np

from .shapes import COLOURS, KINDS, Scenes, truth_masks

__all__ = ["factor_masks", "factor_names"]


def factor_names(config) -> list[str]:
    """The factor names of world ``config`` (a :class:`~.shapes.WorldConfig`), in mask order."""
    return (["object"] + [f"kind:{k}" for k in KINDS if k in config.kinds]
            + [f"colour:{c}" for c in COLOURS if c in config.colours]
            + ["contour", "shadow", "background"] + [f"slot:{j}" for j in range(config.max_objects)])


def factor_masks(scenes: Scenes) -> tuple[list[str], np.ndarray]:
    """``(names, masks)``: the :func:`factor_names` of the scenes' world and bool masks
    ``(n, factors, h, w)`` of every scene (see the module docstring)."""
    if not isinstance(scenes, Scenes):
        raise TypeError(f"scenes must be a Scenes, got {type(scenes).__name__}")
    config = scenes.config
    kinds, colours = truth_masks(scenes)
    planes = ([scenes.object_masks.any(axis=1)]
              + [kinds[:, KINDS.index(k)] for k in KINDS if k in config.kinds]
              + [colours[:, COLOURS.index(c)] for c in COLOURS if c in config.colours]
              + [scenes.contour, scenes.shadow, scenes.background]
              + [scenes.object_masks[:, j] for j in range(config.max_objects)])
    return factor_names(config), np.stack(planes, axis=1)
