"""Mask R-CNN (paper Sec. 5.2, Table 5) on TF Model Garden with every norm-act through the one seam.

- :mod:`.fpn`: the FPN decoder, registered in Model Garden's decoder factory as ``evonorm_fpn``.
- :mod:`.heads`: Model Garden's RPN, box and mask heads with their BatchNormalization + activation
  pairs replaced by ``create_norm_act`` layers (the FC norm of the box head normalizes per RoI).
- :mod:`.maskrcnn`: the model builder (Model Garden's anchors, ROI generator/sampler/aligner,
  detection generator and mask sampler, with the project's backbone, decoder and heads).
- :mod:`.task`: the Mask R-CNN task config subclass and its task, registered with Model Garden.
- :mod:`.experiments`: one registered experiment per Table 5 row plus ``_tiny`` CPU twins.
"""
