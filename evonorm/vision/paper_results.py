"""ImageNet top-1 accuracies (%) the paper reports, keyed by our experiment columns (Tables 3, 4, 7).

Transcribed from Liu et al. 2020 (``shared/paper-evonorms.txt``); means over three runs where the paper
gives error bars. Keys are norm-act registry names. Table 7 lists the three seeds of each EvoNorm-B0
variant on ResNet-50 (original setting); "1e-3" is kept as the paper prints it (chance level).
"""

TABLE3_LAYERS = ("bn_relu", "bn_silu", "evonorm_b0", "evonorm_b1", "evonorm_b2")
TABLE3_COLUMNS = ("t3_r50", "t3_r50_aug", "t3_r50_aug_2x", "t3_r50_aug_2x_cos", "t3_mv2", "t3_mn",
                  "t3_en_b0", "t3_en_b5")
_TABLE3 = {
    "bn_relu": (76.3, 76.2, 77.6, 77.7, 73.4, 74.6, 76.4, 83.6),
    "bn_silu": (76.6, 77.3, 78.2, 78.2, 74.5, 75.3, 77.0, 83.5),
    "evonorm_b0": (76.6, 77.7, 77.9, 78.4, 75.0, 75.3, 76.8, 83.6),
    "evonorm_b1": (76.1, 77.5, 77.7, 78.0, 74.6, 75.1, 76.5, 83.6),
    "evonorm_b2": (76.6, 77.7, 78.0, 78.4, 74.6, 75.0, 76.6, 83.4),
}

TABLE4_LAYERS = ("bn_relu", "gn_relu", "frn", "evonorm_s0", "evonorm_s1", "evonorm_s2")
TABLE4_COLUMNS = ("t4_r50_large", "t4_r50_small", "t4_r50_fancy_large", "t4_r50_fancy_small",
                  "t4_mv2_large", "t4_mv2_small")
_TABLE4 = {
    "bn_relu": (76.3, 70.9, 77.7, 70.5, 73.4, 66.7),
    "gn_relu": (75.3, 75.8, 77.1, 77.2, 72.2, 72.4),
    "frn": (75.6, 75.9, 54.7, 77.4, 73.4, 73.5),
    "evonorm_s0": (76.1, 76.5, 78.3, 78.3, 73.9, 74.0),
    "evonorm_s1": (76.1, 76.3, 78.2, 78.2, 73.6, 73.7),
    "evonorm_s2": (76.0, 76.3, 77.9, 78.0, 73.7, 73.8),
}

# Table 7: three seeds each (accuracy at the point a NaN occurred, if any).
TABLE7 = {
    "evonorm_b0": (76.5, 76.6, 76.6),
    "evonorm_b0_no_v1x": (14.4, 50.5, 22.0),
    "evonorm_b0_no_local": (4.2, 4.1, 4.1),
    "evonorm_b0_no_global": (1e-3, 1e-3, 1e-3),
    "evonorm_b0_max_to_add": (1e-3, 1e-3, 1e-3),
}


def _by_column(table: dict, columns: tuple) -> dict:
    return {column: {layer: values[i] for layer, values in table.items()}
            for i, column in enumerate(columns)}


_T7 = {layer: "/".join("1e-3" if v == 1e-3 else f"{v:g}" for v in seeds) for layer, seeds in TABLE7.items()}
PAPER_RESULTS = {**_by_column(_TABLE3, TABLE3_COLUMNS), **_by_column(_TABLE4, TABLE4_COLUMNS), "t7": _T7}
