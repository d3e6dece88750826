"""PGD adversarial training (Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018), as a Keras model whose ``train_step`` does it.

Each step, for a mini-batch ``(x_i, y_i)``:

1. labels to attack: the true ``y_i`` (``labels="true"``, the slides' ideal variant) or the
   predictions ``argmax_m f_m(x_i)`` of the current model (``labels="predicted"``, the slides'
   "in practice" variant: training condition matches testing condition);
2. ``x_adv`` = PGD (or one FGSM step, the cheap option) against the wrapped model in inference
   mode (``training=False``), gradients stopped;
3. ``batch_loss = 1/b sum_i CE(f(x_i), y_i) + 1/b sum_i CE(f(x_adv_i), y_i)`` (sparse CE from
   logits) and one optimizer step on it.

Because it is an ordinary ``keras.Model``, ``fit`` keeps its progress bar, callbacks,
validation data and ``History``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from adversarial._common import (
    call_model,
    check_clip_range,
    check_int,
    check_real,
    iterative_attack,
)

ATTACKS = ("pgd", "fgsm")
LABEL_MODES = ("true", "predicted")


class AdversarialTraining(keras.Model):
    """Wraps a logits model; ``compile`` and ``fit(x, y)`` as usual train it adversarially.

    The clean and adversarial halves go through the wrapped model as ONE batch ``[x; x_adv]``
    (one forward/backward pass; batch-norm statistics are taken over both halves); the loss is
    the sum of the two half means, as in the formula above. Compiled metrics (e.g.
    ``"accuracy"``) are computed on the CLEAN logits; the reported ``loss`` is ``batch_loss``
    in training and the clean CE in evaluation/validation (``evaluate`` does not attack).

    Args:
        model: a Keras model mapping images to logits ``(N, K)``; trained in place, available
            as ``.model`` (save that one as ``.keras``).
        attack: ``"pgd"`` or ``"fgsm"`` (one step of size ``epsilon`` from ``x``, Goodfellow
            et al. 2015; ``num_steps``, ``step_size`` and ``random_init`` are then unused).
        epsilon: L-inf radius, ``>= 0``. num_steps: PGD steps ``>= 1``. step_size: ``> 0``.
        labels: ``"true"`` or ``"predicted"`` (see the module docstring).
        random_init: PGD starts at ``x + U(-eps, eps)``.
        clip_value_min, clip_value_max: valid input range.
        seed: seeds the random starts (a ``keras.random.SeedGenerator``).

    Example:
        >>> trainer = AdversarialTraining(cnn, epsilon=0.2, num_steps=10, step_size=0.05)
        >>> trainer.compile(optimizer="adam", metrics=["accuracy"])
        >>> history = trainer.fit(x_train, y_train, epochs=5, validation_split=0.1)
        >>> trainer.model.save("pgd_trained.keras")
    """

    def __init__(self, model, *, attack="pgd", epsilon=0.3, num_steps=20, step_size=0.01,
                 labels="true", random_init=True, clip_value_min=0., clip_value_max=1.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model returning logits, got {type(model)!r}")
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
        if labels not in LABEL_MODES:
            raise ValueError(f"labels must be one of {LABEL_MODES}, got {labels!r}")
        self.model = model
        self.attack = attack
        self.epsilon = check_real(epsilon, "epsilon", minimum=0.0)
        self.num_steps = 1 if attack == "fgsm" else check_int(num_steps, "num_steps")
        self.step_size = (self.epsilon if attack == "fgsm"
                          else check_real(step_size, "step_size", minimum=0.0, strict=True))
        self.labels = labels
        self.random_init = bool(random_init) and attack == "pgd"
        self.clip_value_min, self.clip_value_max = check_clip_range(clip_value_min,
                                                                    clip_value_max)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self._seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile`` with sparse CE from logits as the default loss.

        The loss given here is used by ``evaluate``/validation; training always uses the
        adversarial ``batch_loss``.
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def adversarial_examples(self, images, labels):
        """``x_adv`` for a batch (graph code, used inside ``train_step``), gradients stopped."""
        images = tf.cast(images, tf.float32)

        def model_fn(batch):
            return call_model(self.model, batch, True)

        if self.labels == "predicted":
            labels = tf.argmax(model_fn(images), axis=1, output_type=tf.int32)
        seed = tf.cast(keras.random.randint((2,), 0, 2**31 - 1, seed=self._seed_generator),
                       tf.int64)
        return iterative_attack(
            model_fn, images, tf.cast(labels, tf.int32), tf.constant(self.epsilon, tf.float32),
            tf.constant(self.step_size, tf.float32), tf.constant(self.num_steps, tf.int32),
            tf.constant(0.0), seed, tf.constant(self.clip_value_min, tf.float32),
            tf.constant(self.clip_value_max, tf.float32), norm=np.inf, loss="ce",
            targeted=False, random_init=self.random_init, momentum=False)

    def train_step(self, data):
        images, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = tf.cast(images, tf.float32)
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        adversarial = self.adversarial_examples(images, labels)
        with tf.GradientTape() as tape:
            logits = self.model(tf.concat([images, adversarial], 0), training=True)
            clean_logits, adversarial_logits = tf.split(logits, 2)
            batch_loss = (_mean_cross_entropy(labels, clean_logits, sample_weight)
                          + _mean_cross_entropy(labels, adversarial_logits, sample_weight))
            total_loss = batch_loss + sum(self.model.losses)
        gradients = tape.gradient(total_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self._loss_tracker.update_state(batch_loss, sample_weight=tf.shape(images)[0])
        return self.compute_metrics(images, labels, clean_logits, sample_weight=sample_weight)


def _mean_cross_entropy(labels, logits, sample_weight=None):
    """``1/b sum_i w_i CE(f(x_i), y_i)`` from logits (``w_i = 1`` without sample weights)."""
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                          logits=tf.cast(logits, tf.float32))
    if sample_weight is not None:
        loss = loss * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.reduce_mean(loss)
