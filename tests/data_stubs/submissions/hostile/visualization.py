"""A submission that tries every way of escaping the grader, one per function.

Only ``gram_matrix`` is an honest (and correct) implementation: it must still score after the
others crashed, exited, looped or tried to read the answers.
"""

import os
import sys
import time

import numpy as np


def gram_matrix(features):
    features = np.asarray(features, np.float64)
    return np.einsum("nhwc,nhwd->ncd", features, features)


def saliency_map(model, images, class_index=None):
    os._exit(0)  # ends the process with status 0: must not read as "all passed"


def guided_backprop(model, images, class_index=None, layer_name=None, unit_index=None):
    sys.exit("giving up")  # SystemExit is not an Exception


def deconvnet(model, images, class_index=None, layer_name=None, unit_index=None):
    while True:  # never returns
        pass


def grad_cam(model, images, class_index=None, layer_name=None):
    root = os.environ.get("HOSTILE_REPO_ROOT", "/work/main")
    with np.load(os.path.join(root, "data_stubs", "references", "grad_cam.npz")) as stored:
        return stored["output"]


def occlusion_sensitivity(model, images, class_index=None, patch_size=8, stride=4,
                          fill_value=None):
    hog = np.ones(2**30 // 8)  # 1 GiB more than the grader allows
    time.sleep(60)
    return hog


def style_loss(features, target_grams, weights=None):
    # Make every comparison pass: patch the grader's compare (if it can be reached at all).
    for name, module in list(sys.modules.items()):
        if hasattr(module, "compare"):
            module.compare = lambda *args, **kwargs: None
    import data_stubs.grading.compare as grading_compare  # must be refused

    grading_compare.compare = lambda *args, **kwargs: None
    return 0.0
