"""Ticket photos are checked by their content, never by their name or the browser's word.

Pillow must recognise the bytes as a JPEG, PNG or WebP image of sane dimensions; the image is
then decoded and saved again. What is stored is therefore always a plain image that we wrote,
turned upright, at most MAX_SIDE pixels on its longer side, and without the EXIF block (a phone
photo of a flat carries the GPS position of the home). Pure functions: no database, no storage.
"""

import warnings
from dataclasses import dataclass
from io import BytesIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow format -> (content type, file extension, save options)
FORMATS = {
    "JPEG": ("image/jpeg", ".jpg", {"quality": 85, "optimize": True}),
    "PNG": ("image/png", ".png", {"optimize": True}),
    "WEBP": ("image/webp", ".webp", {"quality": 85}),
}
MAX_PIXELS = 50_000_000  # a 50-megapixel phone camera; anything larger is refused unread
MAX_SIDE = 2560


@dataclass(frozen=True)
class CleanPhoto:
    content: ContentFile
    content_type: str
    width: int
    height: int

    @property
    def size(self) -> int:
        return self.content.size


def _not_an_image() -> ValidationError:
    return ValidationError(
        _("This file is not a photo we can read: please send a JPEG, PNG or WebP image."),
        code="invalid_image",
    )


def clean_photo(upload) -> CleanPhoto:
    """Check an uploaded file (a Django UploadedFile or any file object with .size) and return
    the re-encoded image to store. Raises ValidationError for anything else."""
    max_bytes = settings.REPAIRS_PHOTO_MAX_BYTES
    size = getattr(upload, "size", None)
    if size is None or size > max_bytes:
        raise ValidationError(
            _("The photo is too large: at most %(limit)s.") % {"limit": filesizeformat(max_bytes)},
            code="too_large",
        )
    try:
        with warnings.catch_warnings():
            # A "decompression bomb" (tiny file, huge canvas) is refused, not merely warned about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            upload.seek(0)
            with Image.open(upload) as probe:
                image_format = probe.format
                if image_format not in FORMATS:
                    raise _not_an_image()
                if probe.width * probe.height > MAX_PIXELS:
                    raise _not_an_image()
                probe.verify()
            upload.seek(0)
            with Image.open(upload) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail((MAX_SIDE, MAX_SIDE))
                if image_format == "JPEG" and upright.mode not in ("RGB", "L"):
                    upright = upright.convert("RGB")
                content_type, extension, options = FORMATS[image_format]
                buffer = BytesIO()
                # No exif= / pnginfo= argument: the metadata is not carried over.
                upright.save(buffer, format=image_format, **options)
                width, height = upright.size
    except ValidationError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ) as exc:
        raise _not_an_image() from exc
    return CleanPhoto(
        content=ContentFile(buffer.getvalue(), name=f"photo{extension}"),
        content_type=content_type,
        width=width,
        height=height,
    )
