"""Attacks that vandalise the model or reach for the reference package.

``fgsm_attack`` is correct but zeroes the model's weights afterwards: the next case must get an
intact model. The others try to run the reference implementation through a back door.
"""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.environ.get("HOSTILE_REPO_ROOT", "/work/main")


def fgsm_attack(model, input_image, input_label, epsilon=0.3, clip_value_min=0.,
                clip_value_max=1.0, soft_label=False, targeted=False):
    x = tf.convert_to_tensor(np.asarray(input_image, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(input_label, tf.int64), model(x, training=False))
    direction = -1.0 if targeted else 1.0
    adv = tf.clip_by_value(x + direction * epsilon * tf.sign(tape.gradient(loss, x)),
                           clip_value_min, clip_value_max)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    return adv


def pgd_attack(model, input_image, input_label, **kwargs):
    sys.path.insert(0, ROOT)
    from adversarial.pgd import pgd_attack as reference  # not a package here: refused

    return reference(model, input_image, input_label, **kwargs)


def mim_attack(model, input_image, input_label, **kwargs):
    import importlib.util

    spec = importlib.util.spec_from_file_location("stolen", os.path.join(ROOT, "adversarial",
                                                                         "mim.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # reading the source is refused
    return module.mim_attack(model, input_image, input_label, **kwargs)


def lbfgs_attack(model, input_image, target_label, **kwargs):
    out = subprocess.run([sys.executable, "-c", "import adversarial; print('escaped')"],
                         capture_output=True, text=True, check=True)
    raise RuntimeError(out.stdout)
