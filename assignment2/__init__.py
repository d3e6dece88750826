"""Assignment 2: semantic segmentation of SpaceNet 2 tiles into three classes.

Modules, in the order data flows through them: ``data`` (reading areas and prepared folders),
``masks`` (polygons to 3-class masks), ``prepare`` (CLI), ``augment`` and ``pipeline`` (tf.data),
``model`` (U-Net with a dilated context module), ``tta`` (test-time augmentation), ``metrics``
(SpaceNet metrics), ``train`` (CLI).
"""

#: The classes of every mask: 0 background, 1 building interior, 2 building boundary.
CLASS_NAMES = ("background", "building", "boundary")
NUM_CLASSES = len(CLASS_NAMES)
#: Mask value of pixels that carry no label (e.g. rotated in from outside the tile); ignored by
#: the loss and the metrics.
IGNORE_INDEX = 255
