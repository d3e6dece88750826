"""Guided backpropagation (Springenberg et al. 2015, "Striving for Simplicity: The All
Convolutional Net") and the deconvnet (Zeiler & Fergus 2014, "Visualizing and Understanding
Convolutional Networks"): the gradient to the image with the ReLU backward rule replaced."""

from __future__ import annotations

import numpy as np

from visualization._relu_override import image_gradients


def guided_backprop(model, images, class_index=None, *, layer_name=None,
                    unit_index=None, preprocess=None) -> np.ndarray:
    """Guided backpropagation to the image: at each ReLU ``R^l = (f^l > 0) (R^{l+1} > 0) R^{l+1}``.

    What is sent back (``R`` at the top) is either the class score ``S_k`` before softmax, or,
    with ``layer_name``, one unit of that layer (the lecture: "set the gradient there to all
    zero except for one 1 for some neuron of interest"):

    * ``unit_index=k`` (int): the SUM of feature map / unit ``k`` over all positions,
    * ``unit_index=(i, j, k)`` (a full index without the batch axis): that single element,
    * ``unit_index=None``: per example, the feature map with the largest sum.

    Args:
        model: Keras model (Sequential, Functional, subclassed, nested) or a function of the
            images; its ReLUs of every form (``activation="relu"``, ``Activation("relu")``,
            ``ReLU()``, ``ReLU(max_value=6)``, ``tf.nn.relu``/``keras.ops.relu`` in a
            ``Lambda``, an activation or a ``call``) are overridden for the call only; the
            model is left exactly as it was. A ReLU that cannot be reached (inside a nested
            ``tf.function``) raises ValueError naming it.
        images: ``(N, H, W, C)``.
        class_index: ``None`` (predicted class), an int, or one per example; not with
            ``layer_name``.
        layer_name: name of any layer, searched through nested models.
        unit_index: see above.
        preprocess: applied inside the gradient (see
            :func:`visualization._model.resolve_preprocess`); ``images`` are raw.

    Returns:
        float32 array ``(N, H, W, C)``, the modified gradient for each image.
    """
    return image_gradients(model, images, class_index, layer_name=layer_name,
                           unit_index=unit_index, rule="guided", preprocess=preprocess)


def deconvnet(model, images, class_index=None, *, layer_name=None,
              unit_index=None, preprocess=None) -> np.ndarray:
    """The deconvnet backward pass: at each ReLU ``R^l = (R^{l+1} > 0) R^{l+1}``.

    Same arguments and targets as :func:`guided_backprop`; only positive signals pass a ReLU,
    whatever the forward activation was (Zeiler & Fergus 2014).

    Returns:
        float32 array ``(N, H, W, C)``.
    """
    return image_gradients(model, images, class_index, layer_name=layer_name,
                           unit_index=unit_index, rule="deconvnet", preprocess=preprocess)
