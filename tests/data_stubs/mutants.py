"""A catalogue of typical student mistakes, each written as code around the reference.

A mutant is ``(name, case, make)``: ``make(reference)`` returns a function with the graded
function's signature that makes one typical mistake -- mostly by calling the package's own
function with one thing wrong (a flipped sign, a missing clip, the model in training mode), so
the mutants stay valid when the references are regenerated. Where the mistake lives inside the
algorithm (MIM's normalisation, saliency's channel reduction) a small independent
implementation has a switch for it; its correct setting must pass (checked too, which also
checks the references against an implementation that is not the package's).
``case`` is the case that must catch it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Mutant:
    name: str
    case: str
    make: object  # reference function -> mutated function
    description: str


def with_params(**changes):
    """The reference called with some parameters changed."""
    def make(reference):
        def mutant(*args, **kwargs):
            return reference(*args, **{**kwargs, **changes})
        return mutant
    return make


def flipped(parameter):
    """The reference with a boolean parameter inverted (the sign of the step)."""
    def make(reference):
        def mutant(*args, **kwargs):
            return reference(*args, **{**kwargs, parameter: not kwargs.get(parameter, False)})
        return mutant
    return make


def training_mode(reference):
    """The model called with ``training=True`` (batch statistics, random dropout)."""
    def mutant(model, *args, **kwargs):
        return reference(lambda x: model(x, training=True), *args, **kwargs)
    return mutant


def transformed_output(transform):
    def make(reference):
        def mutant(*args, **kwargs):
            return transform(reference(*args, **kwargs), *args)
        return mutant
    return make


# ---------------------------------------------------------------- independent implementations
def _class_scores(model, x, labels):
    logits = model(x, training=False)
    return tf.gather(logits, tf.cast(labels, tf.int32), batch_dims=1)


def mim(normalise="l1"):
    """Momentum iterative method (Dong et al. 2018) in plain eager TensorFlow.

    ``g <- decay * g + grad / ||grad||_1``; ``x <- clip(Proj(x + a sign(g)))``. ``normalise="l2"``
    divides by the L2 norm instead: the typical slip.
    """
    def attack(model, input_image, input_label, epsilon=0.3, num_steps=20, step_size=0.01,
               decay=1.0, clip_value_min=0.0, clip_value_max=1.0, targeted=False,
               random_init=False, **_):
        x = tf.convert_to_tensor(np.asarray(input_image, np.float32))
        labels = tf.cast(np.asarray(input_label).reshape(-1), tf.int64)
        adv, momentum = x, tf.zeros_like(x)
        axes = list(range(1, x.shape.rank))
        for _ in range(num_steps):
            with tf.GradientTape() as tape:
                tape.watch(adv)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(adv,
                                                                                   training=False))
            grad = tape.gradient(loss, adv)
            if normalise == "l1":
                norm = tf.reduce_sum(tf.abs(grad), axes, keepdims=True)
            else:
                norm = tf.sqrt(tf.reduce_sum(grad ** 2, axes, keepdims=True))
            momentum = decay * momentum + grad / tf.maximum(norm, 1e-12)
            adv = adv + (-1.0 if targeted else 1.0) * step_size * tf.sign(momentum)
            adv = tf.clip_by_value(x + tf.clip_by_value(adv - x, -epsilon, epsilon),
                                   clip_value_min, clip_value_max)
        return adv.numpy()
    return lambda reference: attack


def saliency(reduce="max", absolute=True, softmax=False):
    """Saliency (Simonyan et al. 2014): ``max_c |dS_k/dx|`` of the top class score ``S_k``."""
    def saliency_map(model, images, class_index=None, **_):
        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x, training=False)
            scores = tf.nn.softmax(logits) if softmax else logits
            top = tf.argmax(logits, axis=-1)
            score = tf.gather(scores, top, batch_dims=1)
        grad = tape.gradient(score, x)
        grad = tf.abs(grad) if absolute else grad
        return (tf.reduce_max(grad, -1) if reduce == "max" else tf.reduce_sum(grad, -1)).numpy()
    return lambda reference: saliency_map


def plain_gradient(reference):
    """'Guided backprop' that is the plain input gradient of the class score (no ReLU rule)."""
    def guided_backprop(model, images, class_index=None, **_):
        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x, training=False)
            score = tf.gather(logits, tf.argmax(logits, -1), batch_dims=1)
        return tape.gradient(score, x).numpy()
    return guided_backprop


def pgd_restarts(keep="success"):
    """L-inf PGD with random restarts (Madry et al. 2018) in plain eager TensorFlow.

    Each restart starts at ``x + U(-eps, eps)`` (clipped) and takes ``num_steps`` projected
    sign steps; ``keep="success"`` returns per example a restart that is misclassified if any
    (the first such one), ``keep="last"`` the last restart whatever it gave: the typical slip.
    """
    def attack(model, input_image, input_label, epsilon=0.3, num_steps=20, step_size=0.01,
               clip_value_min=0.0, clip_value_max=1.0, restarts=1, random_init=True, **_):
        x = tf.convert_to_tensor(np.asarray(input_image, np.float32))
        labels = tf.cast(np.asarray(input_label).reshape(-1), tf.int64)
        best, found = None, tf.zeros(labels.shape, tf.bool)
        for _ in range(restarts):
            adv = x + (tf.random.uniform(x.shape, -epsilon, epsilon) if random_init else 0.0)
            adv = tf.clip_by_value(adv, clip_value_min, clip_value_max)
            for _ in range(num_steps):
                with tf.GradientTape() as tape:
                    tape.watch(adv)
                    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels, model(adv, training=False))
                adv = adv + step_size * tf.sign(tape.gradient(loss, adv))
                adv = tf.clip_by_value(x + tf.clip_by_value(adv - x, -epsilon, epsilon),
                                       clip_value_min, clip_value_max)
            success = tf.argmax(model(adv, training=False), -1) != labels
            if best is None or keep == "last":
                best, found = adv, success
                continue
            take = tf.reshape(success & ~found, [-1] + [1] * (x.shape.rank - 1))
            best, found = tf.where(take, adv, best), found | success
        return best.numpy()
    return lambda reference: attack


# ---------------------------------------------------------------- segmentation helpers
def batch_norm_after_relu(reference):
    """The U-Net's conv blocks with batch normalisation after the ReLU instead of before it
    (conv -> ReLU -> BN; the lecture's blocks are conv -> BN -> ReLU). Same layers and weights,
    so the stored weights load; built by swapping the reference module's block builder."""
    import keras

    module = sys.modules[reference.__module__]

    def conv_block(x, filters, name, batch_norm):
        for i in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                    kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
            x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        return x

    def build_unet(**kwargs):
        original, module._conv_block = module._conv_block, conv_block
        try:
            return reference(**kwargs)
        finally:
            module._conv_block = original
    return build_unet


def _rot_views(x):
    return np.rot90(x, 1, axes=(1, 2))


def without_inverse(reference):
    """TTA that rotates the views but never rotates the predictions back."""
    def predict_tta(model, image, **kwargs):
        views = [(lambda x: x, lambda y: y), (_rot_views, lambda y: y)]
        return reference(model, image, transforms=views)
    return predict_tta


def mean_iou_without_background(reference):
    def segmentation_metrics(*args, **kwargs):
        result = dict(reference(*args, **kwargs))
        result["mean_iou"] = (result["iou_building"] + result["iou_boundary"]) / 2
        return result
    return segmentation_metrics


CATALOGUE = [
    # FGSM
    Mutant("fgsm_sign_flip", "fgsm_untargeted", flipped("targeted"), "steps down the loss"),
    Mutant("fgsm_no_clip", "fgsm_untargeted", with_params(clip_value_min=-10.0,
                                                           clip_value_max=10.0),
           "no clip to the valid pixel range"),
    Mutant("fgsm_training_mode", "fgsm_rgb", training_mode, "model called with training=True"),
    Mutant("fgsm_ignores_soft_label", "fgsm_soft_label", with_params(soft_label=False),
           "attacks the given labels instead of the predicted ones"),
    Mutant("fgsm_l2_as_linf", "fgsm_l2", with_params(norm=np.inf), "ignores norm=2"),
    Mutant("fgsm_margin_as_ce", "fgsm_margin", with_params(loss="ce"), "ignores loss='margin'"),
    # PGD
    Mutant("pgd_no_projection", "pgd_untargeted", with_params(epsilon=1.0),
           "never projects onto the epsilon ball"),
    Mutant("pgd_epsilon_as_step", "pgd_untargeted", with_params(step_size=0.1),
           "steps by epsilon instead of step_size"),
    Mutant("pgd_single_step", "pgd_untargeted", with_params(num_steps=1), "stops after one step"),
    Mutant("pgd_targeted_sign_flip", "pgd_targeted", flipped("targeted"),
           "targeted attack moves away from the target"),
    Mutant("pgd_training_mode", "pgd_rgb", training_mode, "model called with training=True"),
    Mutant("pgd_l2_as_linf", "pgd_l2", with_params(norm=np.inf), "ignores norm=2"),
    Mutant("pgd_margin_as_ce", "pgd_margin", with_params(loss="ce"), "ignores loss='margin'"),
    Mutant("pgd_restarts_keeps_last", "pgd_restarts", pgd_restarts(keep="last"),
           "returns the last restart instead of a successful one"),
    Mutant("pgd_ignores_restarts", "pgd_restarts", with_params(restarts=1),
           "runs one random start whatever restarts says"),
    # MIM
    Mutant("mim_l2_normalisation", "mim_rgb", mim("l2"), "normalises the gradient by its L2 norm"),
    Mutant("mim_no_momentum", "mim_untargeted", with_params(decay=0.0),
           "forgets the accumulated gradient"),
    Mutant("mim_targeted_sign_flip", "mim_targeted", flipped("targeted"),
           "targeted attack moves away from the target"),
    Mutant("mim_training_mode", "mim_rgb", training_mode, "model called with training=True"),
    # Visualisations
    Mutant("saliency_sum_over_channels", "saliency_rgb", saliency(reduce="sum"),
           "sums |gradient| over the colour channels instead of the maximum"),
    Mutant("saliency_signed", "saliency", saliency(absolute=False), "no absolute value"),
    Mutant("saliency_of_probability", "saliency", saliency(softmax=True),
           "gradient of the softmax probability instead of the score"),
    Mutant("saliency_training_mode", "saliency_rgb", training_mode,
           "model called with training=True"),
    Mutant("guided_backprop_is_plain_gradient", "guided_backprop", plain_gradient,
           "no guided ReLU rule"),
    Mutant("guided_backprop_training_mode", "guided_backprop_rgb", training_mode,
           "model called with training=True"),
    Mutant("grad_cam_no_upsampling", "grad_cam_rgb",
           transformed_output(lambda cam, *_: np.asarray(cam)[:, ::2, ::2]),
           "returns the map at the layer's resolution"),
    Mutant("grad_cam_wrong_layer", "grad_cam", with_params(layer_name="conv1"),
           "uses another layer than asked"),
    Mutant("occlusion_fill_one", "occlusion", with_params(fill_value=1.0),
           "occludes with white instead of the fill value"),
    Mutant("occlusion_maps_the_drop", "occlusion",
           transformed_output(lambda p, *_: 1.0 - np.asarray(p)),
           "maps 1 - P (the drop) where the probability P is asked"),
    Mutant("gram_matrix_divided_by_positions", "gram_matrix",
           transformed_output(lambda g, f: np.asarray(g) / (f.shape[1] * f.shape[2])),
           "normalises the Gram matrix by H*W where the formula does not"),
    Mutant("style_loss_missing_factor", "style_loss",
           transformed_output(lambda loss, *_: 4.0 * np.asarray(loss)),
           "drops the 1/4 of the style loss"),
    Mutant("class_model_without_l2", "class_model_visualization", with_params(l2_decay=0.0),
           "forgets the L2 regulariser"),
    # Segmentation
    Mutant("unet_wrong_dilations", "unet_forward",
           with_params(context_dilations=(1, 1, 1, 1, 1, 1, 1)),
           "context module without growing dilations"),
    Mutant("unet_batch_norm_after_relu", "unet_forward", batch_norm_after_relu,
           "batch normalisation after the ReLU instead of between convolution and ReLU"),
    Mutant("unet_nearest_upsampling", "unet_forward", with_params(upsampling="nearest"),
           "nearest instead of bilinear upsampling"),
    Mutant("tta_without_inverse", "tta_average", without_inverse,
           "averages rotated predictions without rotating them back"),
    Mutant("mean_iou_without_background", "segmentation_metrics", mean_iou_without_background,
           "mean IoU over two of the three classes"),
    Mutant("boundary_too_thin", "rasterisation", with_params(boundary_width=2),
           "boundary of 2 pixels instead of 3"),
]

#: Independent implementations with the mistake switched off: they must pass their cases.
CORRECT = [("mim_l1", "mim_rgb", mim("l1")), ("mim_l1", "mim_untargeted", mim("l1")),
           ("saliency_max_abs", "saliency_rgb", saliency()),
           ("saliency_max_abs", "saliency", saliency()),
           ("pgd_restarts_keep_success", "pgd_restarts", pgd_restarts(keep="success"))]
