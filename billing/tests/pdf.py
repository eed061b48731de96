"""Reading PDF receipts back in tests (pypdf): their text and their fonts."""

import os
from io import BytesIO
from pathlib import Path

import pytest
from django.conf import settings
from pypdf import PdfReader


def require_receipt_font() -> None:
    """The receipts' font must be on this machine (.ci/run installs fonts-wqy-microhei). Without
    it a test that reads a receipt is skipped locally and fails under LINLI_REQUIRE_SERVICES=1
    (CI), so CI can never pass by skipping it."""
    if Path(settings.RECEIPT_PDF_FONT).is_file():
        return
    reason = (
        f"needs the receipts' font {settings.RECEIPT_PDF_FONT}: apt-get install fonts-wqy-microhei"
    )
    if os.environ.get("LINLI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LINLI_REQUIRE_SERVICES=1: this run must not skip it)")
    pytest.skip(reason)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(content)).pages)


def embedded_fonts(content: bytes) -> dict[str, list[str]]:
    """BaseFont → the font-file keys of its descriptor (FontFile, FontFile2, FontFile3), for
    every font a page of the PDF uses (descendant fonts of Type0 fonts included); [] for a font
    that is not embedded."""
    found = {}
    for page in PdfReader(BytesIO(content)).pages:
        for ref in page["/Resources"]["/Font"].values():
            fonts = [ref.get_object()]
            fonts += [d.get_object() for d in fonts[0].get("/DescendantFonts", [])]
            for pdf_font in fonts:
                descriptor = pdf_font.get("/FontDescriptor")
                descriptor = {} if descriptor is None else descriptor.get_object()
                found[str(pdf_font["/BaseFont"])] = sorted(
                    key for key in descriptor if key.startswith("/FontFile")
                )
    return found
