"""Images in and out: load whatever a user has on disk, size it the way each recipe's source did, save it.

The engine works on float32 RGB arrays in 0..255, shape (H, W, 3); the Caffe preprocessing happens
inside the graph, so nothing here knows about BGR or the ImageNet mean.
"""
import functools
import io
import os
import warnings

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserError

# PIL filters by name; `cv2-linear` is cv2.resize's default, used by seed 002 on float32 arrays.
RESAMPLERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "cv2-linear": None,
}
SIZE_MODES = ("long-side", "height", "square", "native", "short-side")


def _to_rgb(img):
    """Flatten any Pillow mode to 8-bit RGB; transparency is composited on white (what a viewer shows)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: Pillow's own conversion clips at 255, so rescale by hand.
        grey = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if grey.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.round(grey * (255.0 / peak)).clip(0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        img = Image.fromarray(np.asarray(img, np.float64).clip(0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(path):
    """Read an image file as float32 RGB (H, W, 3): EXIF orientation applied, first frame of an animation."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not an image file")
    if not os.path.isfile(path):  # /dev/stdin, a named pipe, a device: Pillow needs to seek
        raise UserError(f"{path}: is a pipe or device, not a file; save the image to a file first")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: cannot be read (permission denied); check the file's permissions")
    if os.path.getsize(path) == 0:
        raise UserError(f"{path}: empty file (0 bytes), not an image; re-export or re-download it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: too large to decode safely ({exc}); downscale it first") from None
    except PermissionError:
        raise UserError(f"{path}: cannot be read (permission denied); check the file's permissions") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; use a PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: corrupt or truncated image ({exc}); re-export or re-download it") from None
    if min(rgb.size) < 1:
        raise UserError(f"{path}: image has no pixels")
    return np.asarray(rgb, dtype=np.float32)


ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # where a result can carry the content's transparency


def transparency(path):
    """The alpha channel (H, W) float32 0..1 of an image file with transparent pixels, else None (load_image
    has flattened those pixels onto white: this says that it did, and lets the result get its alpha back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as img:
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in img.info:
                return None
            alpha = np.asarray(img.convert("RGBA"), np.float32)[..., 3] / 255.0
    return alpha if alpha.min() < 1.0 else None


def target_shape(shape, size, mode):
    """(H, W) after sizing: `long-side` keeps the aspect ratio (rounded, as seed 000), `height` sets rows
    and scales cols with int() (the Keras example), `square` is size x size (seed 002), `native` keeps it,
    `short-side` sets the shorter edge (torchvision's Scale, the authors' notebook)."""
    h, w = shape[:2]
    if mode == "native" or size is None:
        return h, w
    if mode == "long-side":
        scale = size / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    if mode == "height":
        return size, max(1, int(w * size / h))
    if mode == "square":
        return size, size
    if mode == "short-side":  # torchvision's Scale(size) / Resize(size): the shorter edge, the other int()
        return (size, max(1, int(size * w / h))) if w >= h else (max(1, int(size * h / w)), size)
    raise ValueError(f"unknown size mode {mode!r}")


def resize(image, shape, method):
    """Resize float32 RGB to (H, W) with the named method; PIL filters run on 8-bit data as the seeds did."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return image
    if method == "cv2-linear":
        return cv2.resize(np.ascontiguousarray(image, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    pil = Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8), "RGB")
    return np.asarray(pil.resize((w, h), RESAMPLERS[method]), dtype=np.float32)


# seed 004's deprocess_image adds the BGR means after flipping to RGB: R gets B's mean, B gets R's
CHANNEL_SLIP_RGB = np.array([103.939 - 123.68, 0.0, 123.68 - 103.939])


def to_uint8(image, cast="round", slip=False):
    """8-bit RGB as a source saved it: `round` to the nearest level; `truncate`, clip then astype('uint8')
    (seeds 000, 002, 003); `unit-truncate`, seed 004's clip, ÷ 255, · 255, astype('uint8') (the round trip
    drops some exact levels by one); `slip` adds seed 004's channel slip first. uint8 input is returned as is."""
    if image.dtype == np.uint8:
        return image
    image = np.asarray(image, np.float64) + CHANNEL_SLIP_RGB if slip else image
    clipped = np.clip(image, 0, 255)
    if cast == "round":
        return np.round(clipped).astype(np.uint8)
    if cast == "unit-truncate":
        clipped = clipped / 255 * 255
    return clipped.astype(np.uint8)


def check_output_extension(path):
    """The Pillow format for an output path, or a UserError naming the extensions it knows."""
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise UserError(f"{path}: unknown image extension {ext or '(none)'!r}; use .png or .jpg")
    size = _round_trip_size(fmt)
    if size is None:
        raise UserError(f"{path}: cannot write RGB images as {fmt} ({ext}); use .png or .jpg")
    if size != (300, 260):
        raise UserError(f"{path}: {fmt} ({ext}) cannot hold the result at its size (Pillow shrinks it to "
                        f"{size[0]}×{size[1]} px); use .png or .jpg")
    return fmt


@functools.lru_cache(maxsize=None)
def _round_trip_size(fmt):
    """The size a 300 × 260 RGB image comes back at after saving as `fmt`, None if it cannot be written.
    Refuses formats without a writer (.h5, .grib), without RGB (.xbm, .msp), and those with a size limit
    Pillow applies silently (.ico shrinks anything to 256 px at most)."""
    probe = io.BytesIO()
    try:
        Image.new("RGB", (300, 260)).save(probe, format=fmt)
        probe.seek(0)
        with Image.open(probe) as back:
            return back.size
    except Exception:
        return None


def write_image_file(image, path, fmt, alpha=None):
    """Write RGB (uint8 as it is, floats clipped and rounded) to `path` as `fmt` (not atomic: see
    save_image, OutputPaths); `alpha` (H, W) 0..1, for a format in ALPHA_FORMATS, makes it RGBA."""
    rgb = to_uint8(image)
    if alpha is None:
        Image.fromarray(rgb, "RGB").save(path, format=fmt)
        return
    a = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]
    Image.fromarray(np.concatenate([rgb, a], axis=-1), "RGBA").save(path, format=fmt)


def save_image(image, path):
    """Write float RGB (clipped, rounded) atomically; the format follows the extension."""
    fmt = check_output_extension(path)
    with atomic_path(path) as tmp:
        write_image_file(image, tmp, fmt)


def demo_pair(size=256):
    """A content/style pair drawn here (no third-party image ships): a village under a sun, and swirls."""
    h, w = size * 3 // 4, size
    content = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(content)
    for y in range(h):  # sky gradient
        t = y / h
        draw.line([(0, y), (w, y)], fill=(int(90 + 120 * t), int(150 + 80 * t), 235))
    draw.ellipse([w * 0.72, h * 0.08, w * 0.88, h * 0.3], fill=(250, 220, 90))
    draw.polygon([(0, h * 0.65), (w * 0.3, h * 0.5), (w * 0.6, h * 0.62), (w, h * 0.48), (w, h), (0, h)],
                 fill=(70, 140, 60))
    for i, x0 in enumerate(np.linspace(0.08, 0.7, 4) * w):
        top, side = h * (0.55 + 0.03 * (i % 2)), w * 0.14
        draw.rectangle([x0, top, x0 + side, top + side], fill=(200 - 30 * i, 120 + 20 * i, 90))
        draw.polygon([(x0 - 4, top), (x0 + side / 2, top - side * 0.6), (x0 + side + 4, top)], fill=(150, 40, 40))
        draw.rectangle([x0 + side * 0.35, top + side * 0.45, x0 + side * 0.65, top + side], fill=(60, 40, 30))
    # the painting: short thick strokes along a swirling flow, in a night palette, the texture a Gram
    # matrix records (smooth swirls of two colours gave a smooth two-colour smear)
    style = Image.new("RGB", (w, h), (25, 45, 110))
    draw = ImageDraw.Draw(style)
    rng = np.random.default_rng(2016)
    palette = np.array([(20, 40, 110), (40, 80, 160), (90, 140, 210), (230, 200, 70), (250, 240, 170),
                        (30, 110, 120), (15, 25, 60)], np.float64)
    length, width = max(3.0, size / 22), max(2, size // 70)
    for _ in range(int(6 * w * h / (length * width))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle = np.arctan2(y - h / 2, x - w / 2) + np.pi / 2 + 0.8 * np.sin(x / w * 6) * np.cos(y / h * 5)
        colour = palette[rng.integers(len(palette))] + rng.normal(0, 12, 3)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c) for c in np.clip(colour, 0, 255)),
                  width=width)
    return np.asarray(content, np.float32), np.asarray(style, np.float32)



# An "empty" mask has no pixel above this (0..1, about 5 of 255 levels): a black canvas with 0..2 levels of
# noise comes back from JPEG (quality 50..95) at 3 levels at most, so such a file is still empty.
MASK_EMPTY_BELOW = 0.02
MASK_ASPECT_SLACK = 0.02  # relative width difference allowed beyond one pixel of rounding


def resize_mask(mask, shape):
    """A float mask (0..1) stretched to (H, W) bilinearly (what load_mask does to the file's pixels)."""
    h, w = shape
    if mask.shape == (h, w):
        return mask
    return np.asarray(Image.fromarray(np.asarray(mask, np.float32), "F").resize((w, h), Image.Resampling.BILINEAR),
                      np.float32).clip(0, 1)


def load_mask(path, shape):
    """A region mask as float32 (H, W) in 0..1 at `shape` = the content's (H, W): white paints, black not.

    The file is read and checked by `load_image`, so a missing, unreadable or corrupt mask is refused the
    same way. Greyscale or RGB; colour counts by its luminance (Pillow's "L"), grey gives partial weight.
    Alpha is ignored: the stored colours count, so a mask drawn white on a transparent canvas reads as
    drawn (transparent pixels keep their own colour, usually black). The mask is stretched to the content's
    size with bilinear filtering; one whose aspect ratio differs from the content's is refused, since it
    was drawn over another framing. A mask with no pixel above MASK_EMPTY_BELOW is refused as empty."""
    rgb = load_image(path)
    with Image.open(path) as img:
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
            img.seek(0)  # load_image composited it on white; take the stored colours instead
            rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGBA"), np.float32)[..., :3]
    h, w = shape
    mh, mw = rgb.shape[:2]
    if abs(mw * h / mh - w) > 1 + MASK_ASPECT_SLACK * w:
        raise UserError(f"{path}: mask is {mw}x{mh} but the content is {w}x{h} (another aspect ratio); "
                        "draw the mask over the content image")
    grey = Image.fromarray(to_uint8(rgb), "RGB").convert("L").resize((w, h), Image.Resampling.BILINEAR)
    mask = np.asarray(grey, np.float32) / 255.0
    if mask.max() < MASK_EMPTY_BELOW:
        raise UserError(f"{path}: mask is black everywhere (empty); paint the region to stylise white")
    return mask
