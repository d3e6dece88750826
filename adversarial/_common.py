"""Shared machinery of the attacks (and of the visualisations): calling a user's model.

Every public attack and visualisation accepts "any callable that maps a batch to logits": a Keras 3
model, a tf-keras model or a plain function. They are always called in inference mode, so that
dropout is off and batch-norm statistics are neither used from the batch nor updated.
"""

from __future__ import annotations

import inspect

import keras


def accepts_training_flag(model) -> bool:
    """Whether ``model(x, training=False)`` is a valid call.

    Keras layers and models (Keras 3 and tf-keras) take ``training``; a plain function takes it
    only if it names it or accepts ``**kwargs``.
    """
    if isinstance(model, keras.Layer):
        return True
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables have no signature
        return False
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def call_model(model, images, training_flag: bool | None = None):
    """``model(images)`` in inference mode.

    Args:
        model: a callable mapping a batch ``(N, ...)`` to logits ``(N, K)``.
        images: the batch, a tensor.
        training_flag: result of :func:`accepts_training_flag`, precomputed by callers that run
            the model in a loop; looked up when ``None``.
    """
    if training_flag is None:
        training_flag = accepts_training_flag(model)
    return model(images, training=False) if training_flag else model(images)
