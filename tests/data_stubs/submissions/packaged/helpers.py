import numpy as np


def as_float(values):
    return np.asarray(values, np.float64)
