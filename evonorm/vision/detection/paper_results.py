"""Table 5 of the paper (Mask R-CNN on COCO val2017), as printed.

Each row: ``(APbox, APbox50, APbox75, APmask, APmask50, APmask75, MAdds in billions, Params in millions)``;
the paper prints AP50/AP75 only for BN-ReLU, EvoNorm-B0 and EvoNorm-S0 (``None`` elsewhere).
Model Garden's COCO evaluator names them ``AP``, ``AP50``, ``AP75``, ``mask_AP``, ``mask_AP50``,
``mask_AP75``.
"""

from __future__ import annotations

COLUMNS = ("AP", "AP50", "AP75", "mask_AP", "mask_AP50", "mask_AP75", "madds_b", "params_m")
LAYERS = ("bn_relu", "bn_silu", "evonorm_b0", "gn_relu", "evonorm_s0")

TABLE5 = {
    "r50_fpn": {
        "bn_relu": (42.1, 62.9, 46.2, 37.8, 60.0, 40.6, 379.7, 46.37),
        "bn_silu": (43.1, None, None, 38.4, None, None, 379.9, 46.38),
        "evonorm_b0": (44.0, 65.2, 48.1, 39.5, 62.7, 42.4, 380.4, 46.38),
        "gn_relu": (42.7, None, None, 38.4, None, None, 380.8, 46.37),
        "evonorm_s0": (43.6, 64.9, 47.9, 39.4, 62.3, 42.7, 380.4, 46.38),
    },
    "spinenet96": {
        "bn_relu": (47.1, 68.0, 51.5, 41.5, 65.0, 44.3, 315.0, 55.19),
        "bn_silu": (47.6, None, None, 42.0, None, None, 315.2, 55.21),
        "evonorm_b0": (48.0, 68.7, 52.6, 42.4, 66.2, 45.8, 315.8, 55.21),
        "gn_relu": (45.7, None, None, 41.0, None, None, 316.5, 55.19),
        "evonorm_s0": (47.5, 68.5, 51.8, 42.1, 65.9, 45.3, 315.8, 55.21),
    },
}


def paper_row(backbone: str, layer: str) -> dict | None:
    """Table 5's numbers of one row as a dict by column (None for rows the paper lacks)."""
    row = TABLE5.get(backbone, {}).get(layer)
    return None if row is None else dict(zip(COLUMNS, row))
