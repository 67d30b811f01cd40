"""The image an optimisation starts from: the content, the first style, or the recipe's kind of noise."""
import numpy as np

from .. import images
from ..vgg.architecture import CAFFE_MEAN_BGR


def initial_image(recipe, content, styles, seed):
    """The starting image (float64 RGB): the content, the first style, or the recipe's kind of noise."""
    rng = np.random.default_rng(seed)
    if recipe.init == "content":
        return content.astype(np.float64)
    if recipe.init == "style":
        return images.resize(styles[0], content.shape[:2], recipe.resample).astype(np.float64)
    mean_rgb = CAFFE_MEAN_BGR[::-1].astype(np.float64)
    if recipe.noise == "uniform":  # U[0, 1) in the preprocessed (BGR − mean) space, as seed 004
        return rng.random(content.shape)[..., ::-1] + mean_rgb
    if recipe.noise == "uniform+128":  # seed 002
        return rng.random(content.shape) + 128.0
    return mean_rgb + rng.normal(0.0, 1e-3, content.shape)  # small Gaussian around the mean (jcjohnson)


def blend_noise(recipe, image, content, seed):
    """anish's --initial-noiseblend: (1 − b) · image + b · noise, the noise N(0, (0.1 · std(content))²) around
    the ImageNet mean (his is around 0 in the preprocessed space)."""
    b = recipe.init_noise_blend
    if not b:
        return image
    rng = np.random.default_rng([seed, 1])
    noise = CAFFE_MEAN_BGR[::-1].astype(np.float64) + rng.normal(0.0, 0.1 * float(np.std(content)), image.shape)
    return (1 - b) * image + b * noise
