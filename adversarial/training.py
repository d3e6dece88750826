"""Adversarial training as a Keras model whose ``train_step`` does it.

Each step, for a mini-batch ``(x_i, y_i)`` of ``b`` examples (``B`` over all replicas):

1. labels to attack: the true ``y_i`` (``labels="true"``) or the current predictions
   ``argmax_m f_m(x_i)`` (``labels="predicted"``, the slides' "in practice" variant);
2. ``x_adv`` inside the L-inf ball ``||x_adv - x||_inf <= eps``, gradients stopped, the wrapped
   model in inference mode (``training=False``):

   * ``attack="pgd"``: PGD from a random start (Madry et al. 2018);
   * ``attack="fgsm"``: one step of size ``eps`` from ``x`` (Goodfellow et al. 2015);
   * ``attack="fast"``: one FGSM step of size ``1.25 eps`` from a uniform random start,
     projected back onto the ball ("Fast is better than free", Wong et al., ICLR 2020);

3. the loss, summed over the replica's examples and divided by the GLOBAL batch size ``B`` (so
   that the gradients summed over replicas are those of the global mean):

   * ``loss="adversarial"`` (Madry et al., ICLR 2018, the default):
     ``1/B sum_i CE(f(x_adv_i), y_i)``;
   * ``loss="mix"`` (Goodfellow et al., ICLR 2015):
     ``1/B sum_i [a CE(f(x_i), y_i) + (1 - a) CE(f(x_adv_i), y_i)]`` with ``a = mix_weight``;
   * ``loss="trades"`` (Zhang et al., "Theoretically Principled Trade-off between Robustness and
     Accuracy", ICML 2019): ``1/B sum_i [CE(f(x_i), y_i) + beta KL(p(x_i) || p(x_adv_i))]``,
     where ``x_adv`` maximises the KL term itself (PGD on the KL from ``x + 0.001 N(0, I)``);

4. one optimizer step; under ``mixed_float16`` the loss is scaled by the
   :class:`keras.optimizers.LossScaleOptimizer` (added by ``compile``) as in Keras' own
   ``train_step``.

Validation (``fit(validation_data=...)``) and ``evaluate`` report the clean loss and metrics
and, unless ``robust_validation=False``, ``robust_accuracy`` and ``robust_loss`` under PGD at
``eps`` (``validation_steps`` steps of ``2.5 eps / validation_steps``, random start), so that
``ModelCheckpoint(monitor="val_robust_accuracy", mode="max")`` keeps the most robust epoch and
``EarlyStopping`` stops on it ("robust overfitting", Rice et al. 2020).

The wrapper is registered for serialisation: ``trainer.save("x.keras")``, ``ModelCheckpoint``
and ``BackupAndRestore`` work, and ``keras.models.load_model`` gives it back.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from adversarial._common import ascent_step, iterative_attack, project
from adversarial.contract import (
    call_model,
    check_choice,
    check_clip_range,
    check_input_range,
    check_int,
    check_real,
    final_activation,
    parse_labels,
)

ATTACKS = ("pgd", "fgsm", "fast")
LOSSES = ("adversarial", "mix", "trades")
LABEL_MODES = ("true", "predicted")
FAST_STEP_FACTOR = 1.25  # Wong et al. 2020: alpha = 1.25 eps
TRADES_INIT_STD = 0.001  # Zhang et al. 2019: x_adv starts at x + 0.001 N(0, I)
VALIDATION_STEP_FACTOR = 2.5  # validation PGD step = 2.5 eps / steps (Madry et al.)


@keras.saving.register_keras_serializable(package="adversarial")
class AdversarialTraining(keras.Model):
    """Wraps a logits model; ``compile`` and ``fit(x, y)`` as usual train it adversarially.

    Args:
        model: a Keras model mapping images to logits ``(N, K)``; trained in place, available
            as ``.model`` (save that one to deploy the classifier alone).
        loss: ``"adversarial"`` (Madry, default), ``"mix"`` (Goodfellow) or ``"trades"``
            (Zhang et al.); see the module docstring.
        attack: ``"pgd"``, ``"fgsm"`` or ``"fast"``. ``"trades"`` needs ``"pgd"`` (on the KL).
        epsilon: L-inf radius ``>= 0`` in the units of the images.
        num_steps: PGD steps ``>= 1`` (unused by ``"fgsm"``/``"fast"``).
        step_size: PGD step ``> 0`` (``"fgsm"`` uses ``eps``, ``"fast"`` ``1.25 eps``).
        labels: ``"true"`` or ``"predicted"``.
        random_init: PGD starts at ``x + U(-eps, eps)`` (TRADES at ``x + 0.001 N(0, I)``);
            ``"fast"`` always starts at random, ``"fgsm"`` never.
        mix_weight: ``a`` in ``[0, 1]`` of ``loss="mix"`` (0.5 in Goodfellow et al.).
        trades_beta: ``beta >= 0`` of ``loss="trades"`` (6 in Zhang et al. on MNIST/CIFAR).
        robust_validation: attack validation/evaluation data with PGD (``robust_accuracy``).
        validation_steps: steps of that PGD, ``>= 1``.
        clip_value_min, clip_value_max: valid input range.
        seed: seeds the random starts (a ``keras.random.SeedGenerator``), ``None`` or ``>= 0``.

    Labels may be ``(N,)`` indices, ``(N, 1)`` columns or ``(N, K)`` one-hot rows.

    Example:
        >>> trainer = AdversarialTraining(cnn, epsilon=0.3, num_steps=10, step_size=0.075)
        >>> trainer.compile(optimizer="adam", metrics=["accuracy"])
        >>> best = keras.callbacks.ModelCheckpoint("best.keras", monitor="val_robust_accuracy",
        ...                                        mode="max", save_best_only=True)
        >>> trainer.fit(x_train, y_train, epochs=20, validation_split=0.1, callbacks=[best])
        >>> trainer.model.save("pgd_trained.keras")
    """

    def __init__(self, model, *, loss="adversarial", attack="pgd", epsilon=0.3, num_steps=20,
                 step_size=0.01, labels="true", random_init=True, mix_weight=0.5,
                 trades_beta=6.0, robust_validation=True, validation_steps=10,
                 clip_value_min=0., clip_value_max=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model returning logits, got {type(model)!r}")
        if final_activation(model) in ("softmax", "sigmoid"):
            raise ValueError(f"model must return logits, got a model ending in a "
                             f"{final_activation(model)} ({model.name!r}): the training loss is "
                             f"computed from logits; remove the final activation")
        self.loss_mode = check_choice(loss, "loss", LOSSES)
        self.attack = check_choice(attack, "attack", ATTACKS)
        if loss == "trades" and attack != "pgd":
            raise ValueError(f"attack must be 'pgd' with loss='trades' (TRADES maximises its KL "
                             f"term by PGD), got {attack!r}")
        self.labels = check_choice(labels, "labels", LABEL_MODES)
        self.model = model
        self.epsilon = check_real(epsilon, "epsilon", minimum=0.0)
        self.num_steps = check_int(num_steps, "num_steps")
        self.step_size = check_real(step_size, "step_size", minimum=0.0, strict=True)
        self.random_init = bool(random_init)
        self.mix_weight = check_real(mix_weight, "mix_weight", minimum=0.0)
        if self.mix_weight > 1.0:
            raise ValueError(f"mix_weight must be in [0, 1], got {mix_weight!r}")
        self.trades_beta = check_real(trades_beta, "trades_beta", minimum=0.0)
        self.robust_validation = bool(robust_validation)
        self.validation_steps = check_int(validation_steps, "validation_steps")
        self.clip_value_min, self.clip_value_max = check_clip_range(clip_value_min,
                                                                    clip_value_max)
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        self._robust_accuracy = keras.metrics.Mean(name="robust_accuracy")
        self._robust_loss = keras.metrics.Mean(name="robust_loss")
        # the training attack's epsilon and step are multiplied by this (see EpsilonWarmup);
        # a weight, so that checkpoints and BackupAndRestore resume the schedule too
        self.epsilon_scale = self.add_weight(shape=(), initializer="ones", trainable=False,
                                             name="epsilon_scale")
        if model.built:  # the wrapper owns no weights of its own: built when the model is
            self.built = True

    # ------------------------------------------------------------------------------------------
    # Keras plumbing

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "model": keras.saving.serialize_keras_object(self.model)}
        config.update({key: getattr(self, key) for key in _CONFIG_KEYS})
        config["loss"] = config.pop("loss_mode")
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                      custom_objects=custom_objects)
        return cls(model, **config)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile`` with sparse CE from logits as the default loss.

        The loss given here is the one ``evaluate``/validation report; training always uses
        the loss chosen at construction. When the wrapped model or the global policy is
        ``mixed_float16`` the optimizer is wrapped in a ``LossScaleOptimizer``.
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        mixed = "mixed_float16" in (self.dtype_policy.name, self.model.dtype_policy.name)
        if (mixed and kwargs.get("auto_scale_loss", True)
                and not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)):
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        """Recompiles a loaded trainer (``keras.models.load_model``) with its saved options."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:  # creates the optimizer's variables, so that its state is restored too
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        extra = [self._robust_accuracy, self._robust_loss] if self.robust_validation else []
        return super().metrics + extra

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit``; array inputs are checked first (see :meth:`check_arrays`)."""
        return super().fit(x, self.check_arrays(x, y), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.evaluate`` (clean metrics, and robust ones if ``robust_validation``)."""
        return super().evaluate(x, self.check_arrays(x, y), *args, **kwargs)

    def check_arrays(self, x, y):
        """Class indices ``(N,)`` int32 from array labels, after checking images and labels.

        Images outside ``[clip_value_min, clip_value_max]`` (e.g. uint8 pixels with the
        default ``[0, 1]``) and labels that are not classes of the model raise ``ValueError``
        naming ``x`` or ``y``. Datasets and generators pass unchecked (their labels, also
        one-hot, are converted inside the step).
        """
        if y is None or not isinstance(y, (np.ndarray, list, tuple)):
            return y
        check_input_range(x, self.clip_value_min, self.clip_value_max, name="x")
        num_classes = int(self.model.output_shape[-1])
        return parse_labels(y, len(x), num_classes, name="y")

    # ------------------------------------------------------------------------------------------
    # the steps

    def adversarial_examples(self, images, labels):
        """``x_adv`` for a batch (graph code, used inside ``train_step``), gradients stopped.

        Args:
            images: ``(b, ...)`` float32 in ``[clip_value_min, clip_value_max]``.
            labels: ``(b,)`` int class indices (ignored with ``labels="predicted"``).
        """
        images = tf.cast(images, tf.float32)
        labels = tf.cast(labels, tf.int32)
        if self.labels == "predicted" and self.loss_mode != "trades":
            labels = tf.argmax(self._inference_logits(images), axis=1, output_type=tf.int32)
        seed = self._next_seed()
        if self.loss_mode == "trades":
            return self._trades_examples(images, seed)
        scale = tf.cast(self.epsilon_scale, tf.float32)
        step_size, num_steps, random_init = {
            "pgd": (self.step_size, self.num_steps, self.random_init),
            "fgsm": (self.epsilon, 1, False),
            "fast": (FAST_STEP_FACTOR * self.epsilon, 1, True)}[self.attack]
        return self._pgd(images, labels, self.epsilon * scale, step_size * scale, num_steps,
                         random_init, seed)

    def train_step(self, data):
        images, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = tf.cast(images, tf.float32)
        labels = _as_indices(labels)
        adversarial = self.adversarial_examples(images, labels)
        with tf.GradientTape() as tape:
            clean_logits, per_example = self._per_example_loss(images, adversarial, labels)
            loss = tf.nn.compute_average_loss(per_example, sample_weight=_weights(sample_weight))
            if self.model.losses:
                loss = loss + tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # the tracker shows the replica's mean loss (the global mean once averaged), as Keras
        self._loss_tracker.update_state(loss * _num_replicas(), sample_weight=tf.shape(images)[0])
        logs = self.compute_metrics(images, labels, clean_logits, sample_weight=sample_weight)
        return {name: value for name, value in logs.items() if name not in _VALIDATION_ONLY}

    def test_step(self, data):
        images, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images = tf.cast(images, tf.float32)
        labels = _as_indices(labels)
        logits = self.model(images, training=False)
        loss = self._compute_loss(x=images, y=labels, y_pred=logits,
                                  sample_weight=sample_weight, training=False)
        # Keras' losses divide by the number of replicas under a strategy: undo it for the log
        self._loss_tracker.update_state(loss * _num_replicas(), sample_weight=tf.shape(images)[0])
        if self.robust_validation:
            self._update_robust_metrics(images, labels, sample_weight)
        return self.compute_metrics(images, labels, logits, sample_weight=sample_weight)

    # ------------------------------------------------------------------------------------------
    # helpers

    def _inference_logits(self, images):
        return tf.cast(call_model(self.model, images, True), tf.float32)

    def _next_seed(self):
        seed = keras.random.randint((2,), 0, 2**31 - 1, seed=self._seed_generator)
        return tf.cast(seed, tf.int64)

    def _pgd(self, images, labels, epsilon, step_size, num_steps, random_init, seed):
        return iterative_attack(
            self._inference_logits, images, labels, tf.cast(epsilon, tf.float32),
            tf.cast(step_size, tf.float32), tf.constant(num_steps, tf.int32),
            tf.constant(0.0), seed, tf.constant(self.clip_value_min, tf.float32),
            tf.constant(self.clip_value_max, tf.float32), norm=np.inf, loss="ce",
            targeted=False, random_init=random_init, momentum=False)

    def _trades_examples(self, images, seed):
        """PGD on ``KL(p(x) || p(x'))`` (Zhang et al. 2019, Algorithm 1's inner loop)."""
        scale = tf.cast(self.epsilon_scale, tf.float32)
        epsilon, step_size = self.epsilon * scale, self.step_size * scale
        low = tf.constant(self.clip_value_min, tf.float32)
        high = tf.constant(self.clip_value_max, tf.float32)
        clean_probabilities = tf.stop_gradient(tf.nn.softmax(self._inference_logits(images)))
        start = images
        if self.random_init:
            start = images + TRADES_INIT_STD * tf.random.stateless_normal(tf.shape(images), seed)
        start = project(start, images, epsilon, np.inf, low, high)

        def body(step, candidate):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(candidate)
                kl = tf.reduce_sum(_kl_divergence(clean_probabilities,
                                                  self._inference_logits(candidate)))
            moved = ascent_step(candidate, tape.gradient(kl, candidate), step_size, np.inf)
            return step + 1, project(moved, images, epsilon, np.inf, low, high)

        _, adversarial = tf.while_loop(lambda step, _: step < self.num_steps, body,
                                       (tf.constant(0), start))
        return tf.stop_gradient(adversarial)

    def _per_example_loss(self, images, adversarial, labels):
        """``(clean logits, (b,) per-example training loss)`` in one forward pass."""
        if self.loss_mode == "adversarial":
            adversarial_logits = tf.cast(self.model(adversarial, training=True), tf.float32)
            clean_logits = tf.stop_gradient(self._inference_logits(images))
            return clean_logits, _cross_entropy(labels, adversarial_logits)
        # one batch [x; x_adv]: one forward/backward pass, batch statistics over both halves
        logits = tf.cast(self.model(tf.concat([images, adversarial], 0), training=True),
                         tf.float32)
        clean_logits, adversarial_logits = tf.split(logits, 2)
        clean_ce = _cross_entropy(labels, clean_logits)
        if self.loss_mode == "mix":
            adversarial_ce = _cross_entropy(labels, adversarial_logits)
            return clean_logits, (self.mix_weight * clean_ce
                                  + (1.0 - self.mix_weight) * adversarial_ce)
        kl = _kl_divergence(tf.nn.softmax(clean_logits), adversarial_logits)
        return clean_logits, clean_ce + self.trades_beta * kl

    def _update_robust_metrics(self, images, labels, sample_weight):
        steps = self.validation_steps
        adversarial = self._pgd(images, labels, self.epsilon,
                                VALIDATION_STEP_FACTOR * self.epsilon / steps, steps, True,
                                self._next_seed())
        logits = self._inference_logits(adversarial)
        correct = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels),
                          tf.float32)
        weights = _weights(sample_weight)
        self._robust_accuracy.update_state(correct, sample_weight=weights)
        self._robust_loss.update_state(_cross_entropy(labels, logits), sample_weight=weights)


class EpsilonWarmup(keras.callbacks.Callback):
    """Grows the training attack's epsilon (and step) linearly from 0 over the first epochs.

    At eps = 0.3 on MNIST, PGD training from a random initialisation can stay at chance level
    (the attack wins every batch before anything is learnt); ramping the budget up, as Gowal et
    al. (2018) and Wong et al. (2020) do, avoids it. Batch ``t`` of ``T = epochs * steps`` warm-up
    batches uses ``eps_t = eps * min(1, (t + 1) / T)``. Validation always uses the full eps.

    Args:
        epochs: warm-up length in epochs, ``>= 0`` (0: no warm-up).
    """

    def __init__(self, epochs):
        super().__init__()
        self.epochs = check_real(epochs, "epochs", minimum=0.0)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params.get("steps") or 1
        total = self.epochs * steps
        fraction = 1.0 if total <= 0 else min(1.0, (self._epoch * steps + batch + 1) / total)
        self.model.epsilon_scale.assign(fraction)


_VALIDATION_ONLY = ("robust_accuracy", "robust_loss")
_CONFIG_KEYS = ("loss_mode", "attack", "epsilon", "num_steps", "step_size", "labels",
                "random_init", "mix_weight", "trades_beta", "robust_validation",
                "validation_steps", "clip_value_min", "clip_value_max", "seed")


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _as_indices(labels):
    """``(b,)`` int32 class indices from ``(b,)``, ``(b, 1)`` or one-hot ``(b, K)`` labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] not in (None, 1):
        return tf.argmax(labels, axis=1, output_type=tf.int32)
    return tf.reshape(tf.cast(labels, tf.int32), [-1])


def _weights(sample_weight):
    if sample_weight is None:
        return None
    return tf.reshape(tf.cast(sample_weight, tf.float32), [-1])


def _cross_entropy(labels, logits):
    """``CE(f(x_i), y_i)`` per example ``(b,)`` from float32 logits."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def _kl_divergence(probabilities, logits):
    """``KL(p || softmax(z))`` per example ``(b,)``, ``p`` given, ``z`` float32 logits."""
    log_q = tf.nn.log_softmax(logits)
    log_p = tf.math.log(tf.maximum(probabilities, 1e-12))
    return tf.reduce_sum(probabilities * (log_p - log_q), axis=1)
