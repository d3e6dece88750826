"""``python -m visualization METHOD [options] --output-dir DIR``: every visualisation as figures.

Runs one method of the "understanding convnets" lectures on the default digits CNN
(:func:`visualization.digits_model.load_digits_cnn`, trained on first use and cached) or on any
``--model PATH.keras``, for a few test digits or for ``--image`` files, and writes into
``--output-dir``:

- ``<method>.png``: the figure (titles, colour bars) drawn by :mod:`visualization.plots`;
  some methods add a second figure (``top-patches_boxes.png``, ``tsne_thumbnails.png``);
- ``<method>.npy``: the raw result array, plus ``images.npy`` (the inputs used) and further
  arrays where the method has them (``classes.npy``, ``history.npy``, ...);
- ``config.json``: every option (the :class:`VisualizationConfig` below) and the values the
  method resolved (layer, unit, classes).

Options are checked before TensorFlow is imported, so ``--help`` and bad options answer at once;
bad input (options, files, a layer the model lacks, an index out of range) prints one line on
stderr and exits with status 2. Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field

from data_stubs.files import write_atomic, write_json_atomic

PROG = "python -m visualization"

METHODS: dict[str, str] = {
    "saliency": "saliency map max_c |dS/dx| (Simonyan et al. 2014)",
    "guided-backprop": "guided backpropagation (Springenberg et al. 2015)",
    "deconvnet": "deconvnet backward pass (Zeiler & Fergus 2014)",
    "grad-cam": "Grad-CAM class activation maps (Selvaraju et al. 2017)",
    "guided-grad-cam": "guided backprop x Grad-CAM",
    "occlusion": "class probability under a sliding grey square (Zeiler & Fergus)",
    "class-model": "images maximising class scores S_c - lambda ||I||^2",
    "neuron": "images maximising units / feature maps of a layer",
    "deepdream": "DeepDream at a layer, with octaves and jitter",
    "inversion": "feature inversion under a TV prior (Mahendran & Vedaldi 2015)",
    "style-transfer": "neural style transfer (Gatys et al. 2016)",
    "filters": "the kernels of a conv layer as images",
    "activations": "the feature maps of an image at a layer",
    "top-patches": "dataset patches that activate a unit most, at its receptive field",
    "tsne": "t-SNE of the codes before the classifier",
    "neighbours": "nearest neighbours in pixel space vs feature space",
    "space-vs-units": "top images along a unit vs a random direction (Szegedy et al.)",
}
DATASET_METHODS = ("top-patches", "tsne", "neighbours", "space-vs-units")
NO_INPUT_METHODS = ("class-model", "neuron", "filters")
DEFAULT_LAYERS = """default --layer (the model's Conv2D layers in forward order):
  filters, activations: the first; inversion: the second; neuron, deepdream, top-patches and
  the content of style-transfer: the last (style: all of them); grad-cam, guided-grad-cam: the
  last layer with a 4-D output; tsne, neighbours, space-vs-units: the layer before the last
  Dense classifier; saliency, guided-backprop, deconvnet, occlusion, class-model: the class
  score (with --layer, guided-backprop and deconvnet send back --unit of that layer)
default --unit: neuron: the first 8 channels; top-patches, space-vs-units: 0; guided-backprop,
  deconvnet: per image the feature map with the largest sum"""
DEFAULT_K = {"top-patches": 9, "neighbours": 5, "space-vs-units": 8}


def _option(default, help_text: str, parse=None):
    """A config field whose help text (the "comment" of the default) feeds ``--help``."""
    return field(default=default, metadata={"help": help_text, "parse": parse})


@dataclass
class VisualizationConfig:
    """Options of ``python -m visualization`` (saved as ``config.json`` beside the outputs)."""

    method: str = "saliency"  # one of METHODS
    output_dir: str = _option("runs/visualization", "folder of the PNG, NPY and config.json "
                              "files (created)")
    model: str = _option("", "a .keras model file; default: the digits CNN (trained on first "
                         "use, cached)")
    image: tuple[str, ...] = _option((), "an image file (PNG/JPG/TIFF), resized to the model's "
                                     "input and scaled to [0, 1]; repeatable; default: test "
                                     "digits")
    num_images: int = _option(4, "test digits used when no --image is given", int)
    dataset_size: int = _option(0, "images of the dataset searched by top-patches, tsne, "
                                "neighbours, space-vs-units; 0: all", int)
    class_index: int | None = _option(None, "class to explain or maximise; default: the "
                                      "predicted class (class-model: every class)", int)
    layer: str | None = _option(None, "layer name; default: the method's choice (saved in "
                                "config.json)")
    unit: int | None = _option(None, "unit / channel index of --layer; default: the method's "
                               "choice", int)
    patch_size: int = _option(8, "occlusion: side of the square in pixels", int)
    stride: int = _option(4, "occlusion: step between square positions in pixels", int)
    steps: int | None = _option(None, "optimisation steps; default: the function's (200; "
                                "deepdream 10 per octave)", int)
    learning_rate: float | None = _option(None, "optimisation step (mean pixel change); "
                                          "default: the function's", float)
    l2_decay: float | None = _option(None, "class-model / neuron: lambda of -lambda ||I||^2; "
                                     "default: the function's (0.01)", float)
    blur_every: int = _option(0, "class-model / neuron: Gaussian blur every k steps (0: off)",
                              int)
    jitter: int | None = _option(None, "class-model / neuron / deepdream: random roll in pixels "
                                 "(default: 0; deepdream 2)", int)
    octaves: int = _option(3, "deepdream: number of scales", int)
    style_image: str = _option("", "style-transfer: style image file; default: the second "
                               "input image")
    k: int | None = _option(None, "images / patches per list (top-patches 9, neighbours 5, "
                            "space-vs-units 8)", int)
    perplexity: float = _option(30.0, "tsne: perplexity", float)
    seed: int = _option(0, "seed of noise, jitter, random directions and t-SNE", int)
    dpi: int = _option(100, "resolution of the PNG figures", int)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option and its value (no TensorFlow)."""
        _require(self.method in METHODS, "method", self.method,
                 f"one of {', '.join(METHODS)}")
        _require(bool(self.output_dir), "output_dir", self.output_dir, "a folder")
        for name in ("num_images", "patch_size", "stride", "octaves"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        for name in ("steps", "k"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, value, ">= 1")
        for name in ("dataset_size", "blur_every", "seed"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        for name in ("class_index", "unit", "jitter", "l2_decay"):
            value = getattr(self, name)
            _require(value is None or value >= 0, name, value, ">= 0")
        _require(self.learning_rate is None or 0 < self.learning_rate < float("inf"),
                 "learning_rate", self.learning_rate, "> 0")
        _require(0 < self.perplexity < float("inf"), "perplexity", self.perplexity, "> 0")
        _require(30 <= self.dpi <= 600, "dpi", self.dpi, "in [30, 600]")
        _require(self.layer is None or bool(self.layer), "layer", self.layer, "a layer name")
        for name, paths in (("model", [self.model] if self.model else []), ("image", self.image),
                            ("style_image", [self.style_image] if self.style_image else [])):
            for path in paths:
                _require(os.path.isfile(path), name, path, "an existing file")


def _require(condition: bool, name: str, value, what: str) -> None:
    if not condition:
        raise ValueError(f"--{name.replace('_', '-')} must be {what}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
class CliError(Exception):
    """A bad command line; reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit itself
        raise CliError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, generated from :class:`VisualizationConfig` and its help texts."""
    methods = "\n".join(f"  {name:<16} {text}" for name, text in METHODS.items())
    parser = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Visualise a convnet; writes PNG figures, .npy arrays and "
                                 "config.json into --output-dir.",
                     epilog=f"methods:\n{methods}\n\n{DEFAULT_LAYERS}\n\nexample:\n  {PROG} "
                            f"grad-cam --output-dir runs/gradcam --class-index 3")
    parser.add_argument("method", metavar="METHOD", choices=list(METHODS),
                        help="the visualisation, one of: " + ", ".join(METHODS))
    for spec in dataclasses.fields(VisualizationConfig):
        if spec.name == "method":
            continue
        flag = "--" + spec.name.replace("_", "-")
        if spec.name == "image":
            parser.add_argument(flag, action="append", default=[], metavar="PATH",
                                help=spec.metadata["help"])
            continue
        text = spec.metadata["help"]
        if "default" not in text:
            text += f" (default: {spec.default!r})"
        parser.add_argument(flag, type=spec.metadata["parse"] or str, default=spec.default,
                            help=text)
    return parser


def parse_config(argv) -> VisualizationConfig:
    """Parse and validate ``argv``; raises :class:`CliError` or ``ValueError``."""
    args = vars(build_parser().parse_args(argv))
    args["image"] = tuple(args["image"])
    config = VisualizationConfig(**args)
    config.validate()
    return config


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 bad input)."""
    try:
        config = parse_config(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    except (CliError, ValueError) as error:
        return _fail(error)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        check_files(config)  # before TensorFlow, whose start-up lines would precede the error
        written = run(config)
    except (ValueError, TypeError, OSError) as error:
        return _fail(error)
    for path in written:
        print(f"[visualization] wrote {path}")
    return 0


def check_files(config: VisualizationConfig) -> None:
    """Raise ``ValueError`` for an image that cannot be read or a model file that is not a
    Keras archive, without importing TensorFlow."""
    import zipfile

    if config.model.endswith(".keras") and not zipfile.is_zipfile(config.model):
        raise ValueError(f"--model must be a .keras archive (a zip file), got {config.model!r}")
    for name, paths in (("image", config.image),
                        ("style_image", [config.style_image] if config.style_image else [])):
        for path in paths:
            read_image(path, (None, None, 1), name)


def _fail(error: BaseException) -> int:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def load_model(config: VisualizationConfig):
    """``--model`` loaded with Keras, or the cached digits CNN; ValueError on a bad file."""
    if not config.model:
        from visualization.digits_model import load_digits_cnn

        return load_digits_cnn()
    import keras

    try:
        return keras.saving.load_model(config.model, compile=False)
    except Exception as error:  # noqa: BLE001 -- any unreadable model file is bad input
        raise ValueError(f"--model cannot be loaded from {config.model!r}: "
                         f"{_first_line(error)}") from None


def model_image_shape(model) -> tuple:
    """``(H, W, C)`` of the model's single image input (``H``, ``W`` may be ``None``)."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"--model must take one image batch (N, H, W, C), its input shape is "
                         f"{shape!r}")
    return tuple(shape[1:])


def read_image(path: str, shape: tuple, name: str = "image"):
    """An image file (PNG/JPG/TIFF, via ``skimage.io``) fitted to ``shape`` (see
    :func:`conform_image`)."""
    from skimage import io

    try:
        pixels = io.imread(path)
    except Exception as error:  # noqa: BLE001 -- whatever the reader raises, the file is bad
        raise ValueError(f"--{name.replace('_', '-')} cannot be read as an image from "
                         f"{path!r}: {_first_line(error)}") from None
    return conform_image(pixels, shape, f"--{name.replace('_', '-')} {path!r}")


def conform_image(pixels, shape: tuple, name: str = "image"):
    """One image fitted to a model input ``(H, W, C)``: float32 ``(H, W, C)`` in [0, 1].

    Integers are divided by their dtype's maximum (255 for uint8), floats outside [0, 1] are
    min-max rescaled; an alpha channel is dropped; colour becomes grey by luminance
    (``skimage.color.rgb2gray``) for a 1-channel model and grey is repeated for a 3-channel one;
    the size becomes ``(H, W)`` by bilinear resizing (anti-aliased), unless the model leaves it
    open (``None``).
    """
    import numpy as np
    from skimage import color, transform

    x = np.asarray(pixels)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 2, 3, 4) or 0 in x.shape:
        raise ValueError(f"{name} must be a grey or colour image (H, W[, C]), got shape "
                         f"{x.shape}")
    x = _unit_range(x)
    x = x[..., :1] if x.shape[-1] == 2 else x[..., :3]  # drop alpha
    channels = shape[-1]
    if channels == 1 and x.shape[-1] == 3:
        x = color.rgb2gray(x)[..., None]
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif channels != x.shape[-1]:
        raise ValueError(f"{name} has {x.shape[-1]} channels, the model expects {channels}")
    size = tuple(t if t is not None else s for t, s in zip(shape[:2], x.shape[:2]))
    if size != x.shape[:2]:
        shrink = size[0] < x.shape[0] or size[1] < x.shape[1]
        x = transform.resize(x, (*size, channels), order=1, anti_aliasing=shrink)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _unit_range(x):
    import numpy as np

    if x.dtype == bool:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    low, high = float(x.min()), float(x.max())
    if low >= 0.0 and high <= 1.0:
        return x
    return (x - low) / (high - low if high > low else 1.0)


def _conform_batch(images, shape: tuple):
    import numpy as np

    if tuple(images.shape[1:]) == tuple(s if s is not None else d
                                        for s, d in zip(shape, images.shape[1:])):
        return images.astype(np.float32)
    return np.stack([conform_image(image, shape, "digits") for image in images])


def _digits(shape: tuple, split: str, count: int):
    """The first ``count`` (0: all) digits of a split, fitted to the model input, and labels."""
    from data_stubs.digits import load_digits

    data = load_digits(image_size=28)
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    count = count or len(x)
    return _conform_batch(x[:count], shape), y[:count]


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a method needs (config, model, inputs) and what it produces."""

    config: VisualizationConfig
    model: object
    shape: tuple
    images: object = None  # (N, H, W, C) float32 in [0, 1], or None for methods without inputs
    labels: object = None  # (N,) true digit labels, or None for --image files
    figures: dict = field(default_factory=dict)  # name -> matplotlib Figure
    arrays: dict = field(default_factory=dict)  # name -> numpy array
    resolved: dict = field(default_factory=dict)  # layer, unit, classes the method chose

    def dataset(self, split: str = "test"):
        """``(images, labels)``: the digits searched by the dataset methods."""
        return _digits(self.shape, split, self.config.dataset_size)


def run(config: VisualizationConfig) -> list[str]:
    """Load the model and inputs, run ``config.method``, write the outputs; returns the paths."""
    import keras

    keras.utils.set_random_seed(config.seed)
    model = load_model(config)
    state = Run(config, model, model_image_shape(model))
    if config.method not in NO_INPUT_METHODS:
        state.images, state.labels = _inputs(config, state.shape)
    RUNNERS[config.method](state)
    return write_outputs(state)


def _inputs(config: VisualizationConfig, shape: tuple):
    import numpy as np

    if config.image:
        return np.stack([read_image(path, shape) for path in config.image]), None
    return _digits(shape, "test", config.num_images)


def write_outputs(state: Run) -> list[str]:
    """Figures as PNG, arrays as .npy and ``config.json``, each atomically; returns the paths."""
    import numpy as np

    folder = state.config.output_dir
    os.makedirs(folder, exist_ok=True)
    paths = []
    if state.images is not None:
        state.arrays = {"images": state.images, **state.arrays}
    for name, figure in state.figures.items():
        paths.append(os.path.join(folder, f"{name}.png"))
        write_atomic(paths[-1], lambda tmp, fig=figure: fig.savefig(
            tmp, format="png", dpi=state.config.dpi))
    for name, array in state.arrays.items():
        paths.append(os.path.join(folder, f"{name}.npy"))
        write_atomic(paths[-1], lambda tmp, a=array: np.save(tmp, np.asarray(a)))
    paths.append(os.path.join(folder, "config.json"))
    write_json_atomic(paths[-1], {**dataclasses.asdict(state.config), "resolved": state.resolved})
    return paths


# ---------------------------------------------------------------------------------------------
# Helpers of the runners
# ---------------------------------------------------------------------------------------------
def conv_layer_names(model) -> list[str]:
    """Names of the model's ``Conv2D`` layers (nested models included), in forward order."""
    import keras

    from visualization._model import all_layers

    return [layer.name for layer in all_layers(model)
            if isinstance(layer, keras.layers.Conv2D)]


def _default_layer(state: Run, which: str) -> str:
    """``--layer`` or a conv layer: ``"first"``, ``"second"`` (or the only one) or ``"last"``."""
    if state.config.layer is not None:
        name = state.config.layer
    else:
        convs = conv_layer_names(state.model)
        if not convs:
            raise ValueError("--layer is needed: the model has no Conv2D layer to default to")
        name = {"first": convs[0], "second": convs[min(1, len(convs) - 1)],
                "last": convs[-1]}[which]
    state.resolved["layer"] = name
    return name


def _explained_classes(state: Run):
    """``--class-index`` for every image, or the model's prediction; recorded in the run."""
    import numpy as np

    count = len(state.images)
    if state.config.class_index is not None:
        classes = np.full(count, state.config.class_index, dtype=np.int64)
    else:
        scores = np.asarray(state.model(state.images, training=False))
        classes = np.argmax(scores, axis=-1).astype(np.int64)
    state.resolved["classes"] = classes.tolist()
    state.arrays["classes"] = classes
    return classes


def _captions(state: Run, classes) -> list[str]:
    labels = state.labels
    return [f"class {c}" + ("" if labels is None else f" (label {labels[i]})")
            for i, c in enumerate(classes)]


def _ascent_options(config: VisualizationConfig, *names: str) -> dict:
    """The optimisation options given on the command line (the rest keep the function's
    defaults)."""
    options = {name: getattr(config, name) for name in names
               if getattr(config, name) is not None}
    if "blur_every" in options and not options["blur_every"]:
        del options["blur_every"]
    return {**options, "seed": config.seed}


def _steps_note(config: VisualizationConfig, default: int) -> str:
    return f"{config.steps or default} steps"


# ---------------------------------------------------------------------------------------------
# Runners: one per method, each fills state.figures / state.arrays / state.resolved
# ---------------------------------------------------------------------------------------------
def run_saliency(state: Run) -> None:
    from visualization.plots import plot_saliency
    from visualization.saliency import saliency_map

    classes = _explained_classes(state)
    maps = saliency_map(state.model, state.images, classes, normalize=True)
    state.arrays["saliency"] = maps
    state.figures["saliency"] = plot_saliency(state.images, maps,
                                              titles=_captions(state, classes))


def _run_modified_backprop(state: Run, method: str, title: str) -> None:
    from visualization import guided
    from visualization.plots import plot_gradient_images

    function = guided.guided_backprop if method == "guided-backprop" else guided.deconvnet
    config = state.config
    if config.layer is None:
        if config.unit is not None:
            raise ValueError(f"--unit needs --layer for {method}, got --unit {config.unit}")
        classes = _explained_classes(state)
        gradients = function(state.model, state.images, classes)
        captions = _captions(state, classes)
    else:
        state.resolved.update(layer=config.layer, unit=config.unit)
        gradients = function(state.model, state.images, layer_name=config.layer,
                             unit_index=config.unit)
        unit = "strongest map" if config.unit is None else f"unit {config.unit}"
        title, captions = f"{title}: {config.layer}, {unit}", None
    state.arrays[method] = gradients
    state.figures[method] = plot_gradient_images(state.images, gradients, titles=captions,
                                                 title=title)


def run_guided_backprop(state: Run) -> None:
    _run_modified_backprop(state, "guided-backprop", "Guided backpropagation (Springenberg "
                                                     "et al.)")


def run_deconvnet(state: Run) -> None:
    _run_modified_backprop(state, "deconvnet", "Deconvnet (Zeiler & Fergus)")


def run_grad_cam(state: Run) -> None:
    from visualization.gradcam import grad_cam, last_spatial_layer
    from visualization.plots import plot_gradcam

    classes = _explained_classes(state)
    layer = state.config.layer or last_spatial_layer(state.model, state.images[:1]).name
    state.resolved["layer"] = layer
    cams = grad_cam(state.model, state.images, classes, layer_name=layer)
    state.arrays["grad-cam"] = cams
    state.figures["grad-cam"] = plot_gradcam(state.images, cams, titles=_captions(state, classes),
                                             title=f"Grad-CAM at {layer} (Selvaraju et al.)")


def run_guided_grad_cam(state: Run) -> None:
    from visualization.gradcam import guided_grad_cam, last_spatial_layer
    from visualization.plots import plot_gradient_images

    classes = _explained_classes(state)
    layer = state.config.layer or last_spatial_layer(state.model, state.images[:1]).name
    state.resolved["layer"] = layer
    result = guided_grad_cam(state.model, state.images, classes, layer_name=layer)
    state.arrays["guided-grad-cam"] = result
    state.figures["guided-grad-cam"] = plot_gradient_images(
        state.images, result, titles=_captions(state, classes),
        title=f"Guided Grad-CAM at {layer}")


def run_occlusion(state: Run) -> None:
    from visualization.occlusion import occlusion_sensitivity
    from visualization.plots import plot_occlusion

    config = state.config
    classes = _explained_classes(state)
    maps = occlusion_sensitivity(state.model, state.images, classes,
                                 patch_size=config.patch_size, stride=config.stride)
    state.arrays["occlusion"] = maps
    state.figures["occlusion"] = plot_occlusion(
        state.images, maps, patch_size=config.patch_size, stride=config.stride,
        titles=_captions(state, classes),
        title=f"Occlusion sensitivity, {config.patch_size}px square, stride {config.stride}")


def run_class_model(state: Run) -> None:
    import numpy as np

    from visualization.maximization import class_model_visualization
    from visualization.plots import plot_maximization

    config = state.config
    count = int(state.model.output_shape[-1])
    classes = ([config.class_index] if config.class_index is not None
               else list(range(min(count, 10))))
    state.resolved["classes"] = classes
    options = _ascent_options(config, "steps", "learning_rate", "l2_decay", "blur_every",
                              "jitter")
    images, history = class_model_visualization(state.model, classes, return_history=True,
                                                **options)
    state.arrays.update({"class-model": images, "classes": np.asarray(classes),
                         "history": history})
    titles = [f"class {c}: S={history[-1, i]:.1f}" for i, c in enumerate(classes)]
    state.figures["class-model"] = plot_maximization(
        images, titles=titles,
        title=f"Class model visualisation ({_steps_note(config, 200)}, score S_c)")


def run_neuron(state: Run) -> None:
    import numpy as np

    from visualization._model import find_layer
    from visualization.maximization import neuron_maximization
    from visualization.plots import plot_maximization

    config = state.config
    layer = _default_layer(state, "last")
    channels = int(find_layer(state.model, layer).output.shape[-1])
    units = [config.unit] if config.unit is not None else list(range(min(channels, 8)))
    state.resolved["units"] = units
    options = _ascent_options(config, "steps", "learning_rate", "l2_decay", "blur_every",
                              "jitter")
    images, history = neuron_maximization(state.model, layer, units, return_history=True,
                                          **options)
    state.arrays.update({"neuron": images, "units": np.asarray(units), "history": history})
    titles = [f"unit {u}: {history[-1, i]:.2f}" for i, u in enumerate(units)]
    state.figures["neuron"] = plot_maximization(
        images, titles=titles, ncols=min(len(units), 4),
        title=f"Maximising mean(f_k) of {layer} ({_steps_note(config, 200)})")


def _before_after(state: Run, name: str, results, title: str, label: str) -> None:
    import numpy as np

    from visualization.plots import plot_image_grid

    count = len(state.images)
    titles = ["input"] * count + [label] * count
    state.arrays[name] = results
    state.figures[name] = plot_image_grid(np.concatenate([state.images, results]), titles=titles,
                                          title=title, ncols=count, value_range=(0.0, 1.0))


def run_deepdream(state: Run) -> None:
    from visualization.deepdream import deep_dream

    config = state.config
    layer = _default_layer(state, "last")
    options = _ascent_options(config, "steps", "learning_rate", "jitter")
    dreams = deep_dream(state.model, state.images, [layer], octaves=config.octaves,
                        value_range=(0.0, 1.0), **options)
    _before_after(state, "deepdream", dreams, f"DeepDream at {layer} ({config.octaves} octaves, "
                  f"{_steps_note(config, 10)} each)", "dream")


def run_inversion(state: Run) -> None:
    from visualization.inversion import invert_features

    config = state.config
    layer = _default_layer(state, "second")
    options = _ascent_options(config, "steps", "learning_rate")
    recon, history = invert_features(state.model, layer, state.images, value_range=(0.0, 1.0),
                                     return_history=True, **options)
    state.arrays["history"] = history
    _before_after(state, "inversion", recon, f"Feature inversion of {layer} "
                  f"(Mahendran & Vedaldi, {_steps_note(config, 200)})", "reconstruction")


def run_style_transfer(state: Run) -> None:
    from visualization.plots import plot_style_transfer
    from visualization.style import style_transfer

    config = state.config
    content = state.images[:1]
    if config.style_image:
        style = read_image(config.style_image, state.shape, "style_image")[None]
    elif len(state.images) >= 2:
        style = state.images[1:2]
    else:
        raise ValueError("--style-image is needed when only one input image is given, got "
                         f"--image {config.image[0]!r}")
    content_layer = _default_layer(state, "last")
    style_layers = conv_layer_names(state.model) or [content_layer]
    state.resolved.update(content_layers=[content_layer], style_layers=style_layers)
    options = _ascent_options(config, "steps", "learning_rate")
    result, history = style_transfer(state.model, content, style, content_layers=[content_layer],
                                     style_layers=style_layers, value_range=(0.0, 1.0),
                                     return_history=True, **options)
    state.arrays.update({"style-transfer": result, "style": style, "history": history})
    state.figures["style-transfer"] = plot_style_transfer(
        content[0], style[0], result[0],
        title=f"Neural style transfer (Gatys et al.), content {content_layer}")


def run_filters(state: Run) -> None:
    from visualization.filters import filter_grid
    from visualization.plots import plot_filters

    layer = _default_layer(state, "first")
    filters = filter_grid(state.model, layer)
    state.arrays["filters"] = filters
    state.figures["filters"] = plot_filters(filters, title=f"Filters of {layer}")


def run_activations(state: Run) -> None:
    from visualization.activations import activation_maps
    from visualization.plots import plot_activation_maps

    layer = _default_layer(state, "first")
    maps = activation_maps(state.model, state.images, layer)
    state.arrays["activations"] = maps
    state.figures["activations"] = plot_activation_maps(maps[0], image=state.images[0],
                                                        title=f"Activation maps of {layer}")


def run_top_patches(state: Run) -> None:
    from visualization.patches import top_patches
    from visualization.plots import plot_patch_boxes, plot_top_patches

    config = state.config
    data, _ = state.dataset()
    layer = _default_layer(state, "last")
    unit = config.unit or 0
    state.resolved["unit"] = unit
    top = top_patches(state.model, data, layer, unit, k=config.k or DEFAULT_K["top-patches"])
    state.arrays.update({"top-patches": top.patches, "activations": top.activations,
                         "locations": top.locations, "boxes": top.boxes})
    state.figures["top-patches"] = plot_top_patches(top, title=f"Top patches of {layer}, "
                                                               f"unit {unit}")
    state.figures["top-patches_boxes"] = plot_patch_boxes(
        data, top, title=f"Receptive fields of {layer}, unit {unit}")


def run_tsne(state: Run) -> None:
    from visualization.plots import plot_tsne
    from visualization.representation import code_layer_name, layer_codes, tsne_embedding

    config = state.config
    data, labels = state.dataset()
    layer = config.layer or code_layer_name(state.model)
    state.resolved["layer"] = layer
    codes = layer_codes(state.model, data, layer)
    embedding = tsne_embedding(codes, perplexity=config.perplexity, seed=config.seed)
    state.arrays.update({"tsne": embedding, "labels": labels, "codes": codes})
    title = f"t-SNE of the {layer} codes of {len(data)} test digits"
    state.figures["tsne"] = plot_tsne(embedding, labels, title=title)
    state.figures["tsne_thumbnails"] = plot_tsne(embedding, labels, images=data, title=title)


def run_neighbours(state: Run) -> None:
    from visualization.plots import plot_neighbour_comparison
    from visualization.representation import compare_neighbours

    config = state.config
    database, _ = state.dataset("train")
    result = compare_neighbours(state.model, state.images, database,
                                config.k or DEFAULT_K["neighbours"], layer_name=config.layer)
    state.resolved["layer"] = result.layer_name
    state.arrays.update({"neighbours": result.feature.indices,
                         "distances": result.feature.distances,
                         "pixel_neighbours": result.pixel.indices,
                         "pixel_distances": result.pixel.distances})
    state.figures["neighbours"] = plot_neighbour_comparison(
        state.images, database, result,
        title=f"Nearest training digits: pixel space vs {result.layer_name} codes")


def run_space_vs_units(state: Run) -> None:
    from visualization.plots import plot_space_vs_units
    from visualization.units import space_vs_units

    config = state.config
    data, labels = state.dataset()
    result = space_vs_units(state.model, data, config.layer, config.unit or 0,
                            k=config.k or DEFAULT_K["space-vs-units"], seed=config.seed)
    state.resolved.update(layer=result.layer_name, unit=result.unit_index)
    state.arrays.update({"space-vs-units": result.unit_indices,
                         "direction_indices": result.direction_indices,
                         "direction": result.direction})
    state.figures["space-vs-units"] = plot_space_vs_units(data, result, labels=labels)


RUNNERS = {
    "saliency": run_saliency,
    "guided-backprop": run_guided_backprop,
    "deconvnet": run_deconvnet,
    "grad-cam": run_grad_cam,
    "guided-grad-cam": run_guided_grad_cam,
    "occlusion": run_occlusion,
    "class-model": run_class_model,
    "neuron": run_neuron,
    "deepdream": run_deepdream,
    "inversion": run_inversion,
    "style-transfer": run_style_transfer,
    "filters": run_filters,
    "activations": run_activations,
    "top-patches": run_top_patches,
    "tsne": run_tsne,
    "neighbours": run_neighbours,
    "space-vs-units": run_space_vs_units,
}
