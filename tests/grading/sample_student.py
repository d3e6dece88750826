"""A sample student submission for the attack functions, with ONE deliberate mistake.

Written independently of the package, in plain eager TensorFlow, the way a student would:
- ``fgsm_attack`` is correct;
- ``pgd_attack`` forgets the projection onto the epsilon-ball (it only clips to the valid range),
  so after ``num_steps * step_size > epsilon`` it leaves the ball: the grading suite must catch it;
- ``mim_attack`` is not implemented at all: the suite must report it as missing.
"""

import numpy as np
import tensorflow as tf


def _loss_gradient(model, images, labels):
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model(images, training=False)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int64), logits)
    return tape.gradient(loss, images)


def fgsm_attack(model, input_image, input_label, epsilon=0.3, clip_value_min=0.,
                clip_value_max=1.0, soft_label=False, targeted=False):
    x = tf.convert_to_tensor(np.asarray(input_image, np.float32))
    direction = -1.0 if targeted else 1.0
    adv = x + direction * epsilon * tf.sign(_loss_gradient(model, x, input_label))
    return tf.stop_gradient(tf.clip_by_value(adv, clip_value_min, clip_value_max))


def pgd_attack(model, input_image, input_label, epsilon=0.3, num_steps=20, step_size=0.01,
               clip_value_min=0., clip_value_max=1.0, soft_label=False, targeted=False,
               random_init=True, seed=None):
    x = tf.convert_to_tensor(np.asarray(input_image, np.float32))
    adv = x
    if random_init:
        adv = x + tf.random.uniform(x.shape, -epsilon, epsilon, seed=seed)
    direction = -1.0 if targeted else 1.0
    for _ in range(num_steps):
        adv = adv + direction * step_size * tf.sign(_loss_gradient(model, adv, input_label))
        # MISTAKE: no projection onto the epsilon-ball around x before clipping.
        adv = tf.clip_by_value(adv, clip_value_min, clip_value_max)
    return tf.stop_gradient(adv)
