"""Colour preservation, the three ways users of classic style transfer reach for.

  post       jcjohnson's `-original_colors 1`: the result's luminance with the content's chroma (YUV),
             applied to the final image.
  histogram  Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer", section 2.1: the
             style image is recoloured by a linear map so its RGB mean and covariance equal the content's,
             before the transfer.
  luminance  the same note, section 2.2: the transfer runs on luminance only (style luminance matched to
             the content's mean and standard deviation), and the content's I and Q channels (YIQ, as the
             note does) are put back afterwards.

Images are float32 RGB 0..255, shape (H, W, 3), as everywhere in the package. Colour-space conversions
are scikit-image's (Y = 0.299 R + 0.587 G + 0.114 B in both its YUV and YIQ).
"""
import numpy as np
from skimage import color

from ..images import resize

# The smallest eigenvalue a covariance is given before its inverse square root, in (0..255 units)²: 1e-5 on
# the 0..1 scale, the regulariser of the note's authors' own code (NeuralImageSynthesis, ColourControl),
# used here as a floor instead of an addition so that a colourful style (least colour variance of natural
# images is well above 1 level²) is matched exactly, while a grey style (covariance of rank 1) stays finite.
COVARIANCE_FLOOR = 1e-5 * 255.0**2


def _unit(image):
    return np.asarray(image, np.float64) / 255.0


def _pixels(image):
    return np.asarray(image, np.float32).clip(0, 255)


def _fit(content, shape):
    """The content at `shape` (H, W): the chroma source must cover the result pixel for pixel."""
    return resize(np.asarray(content, np.float32), shape, "lanczos")


def preserve_colours_post(result, content):
    """The result's luminance (Y) with the content's chroma (U, V), clipped to 0..255.

    The content is resized to the result's size if it differs (Lanczos)."""
    yuv = color.rgb2yuv(_unit(_fit(content, result.shape[:2])))
    yuv[..., 0] = color.rgb2yuv(_unit(result))[..., 0]
    return _pixels(color.yuv2rgb(yuv) * 255.0)


def _sqrt_and_inverse(covariance):
    """Σ^½ and Σ^-½ of a symmetric positive semi-definite 3 × 3 matrix, eigenvalues floored (see above)."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, COVARIANCE_FLOOR)
    return (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T


def colour_transform(style, content):
    """(A, b) with A Σ_S Aᵀ = Σ_C and A μ_S + b = μ_C over RGB pixels: A = Σ_C^½ Σ_S^-½.

    The note derives both a Cholesky map, L_C L_S⁻¹, and this one, the 3-D colour matching of Image
    Analogies (Hertzmann et al. 2001), with symmetric square roots from eigendecompositions. This one is
    used because it does not depend on the order of the colour axes (a Cholesky factor is triangular, so it
    treats R, G and B differently and gives a different map for a permuted colour space), and it is the one
    the authors' own ColourControl notebook runs (its `match_color(..., mode='pca')`)."""
    s = np.asarray(style, np.float64).reshape(-1, 3)
    c = np.asarray(content, np.float64).reshape(-1, 3)
    root_c, _ = _sqrt_and_inverse(np.cov(c, rowvar=False, bias=True))
    _, inv_root_s = _sqrt_and_inverse(np.cov(s, rowvar=False, bias=True))
    a = root_c @ inv_root_s
    return a, c.mean(0) - a @ s.mean(0)


def match_colour_histogram(style, content):
    """The style image recoloured so its RGB mean and covariance equal the content's, clipped to 0..255.

    Apply it to each style image before sizing and before its Gram targets are computed; the content is
    not changed. Clipping is the only departure from an exact match: it bites where the content's colours
    spread further than the style's range allows."""
    a, b = colour_transform(style, content)
    pixels = np.asarray(style, np.float64).reshape(-1, 3)
    return _pixels((pixels @ a.T + b).reshape(np.shape(style)))


def luminance(image):
    """Y of YIQ (= Y of YUV) in 0..255, shape (H, W)."""
    return color.rgb2yiq(_unit(image))[..., 0] * 255.0


def _grey3(lum):
    return _pixels(np.repeat(lum[..., None], 3, axis=-1))


def luminance_inputs(content, style):
    """(content_L3, style_L3): both images as luminance repeated over R, G and B, the style's luminance
    first shifted and scaled to the content's mean and standard deviation (the note's section 2.2,
    L_S' = σ_C/σ_S (L_S − μ_S) + μ_C), clipped to 0..255. A flat style (σ_S = 0) is only shifted."""
    lum_c, lum_s = luminance(content), luminance(style)
    spread = lum_s.std()
    scale = lum_c.std() / spread if spread > 0 else 1.0
    return _grey3(lum_c), _grey3(scale * (lum_s - lum_s.mean()) + lum_c.mean())


def recombine_luminance(result_l3, content):
    """The luminance (Y) of a result optimised on luminance inputs with the content's I and Q, in 0..255.

    The result is not exactly grey (the optimiser moves R, G and B separately), so its Y is taken, which is
    the mean of the channels weighted as luminance. The content is resized to the result's size if needed."""
    yiq = color.rgb2yiq(_unit(_fit(content, result_l3.shape[:2])))
    yiq[..., 0] = luminance(result_l3) / 255.0
    return _pixels(color.yiq2rgb(yiq) * 255.0)
