"""The contact sheet of sample faces at HR and at low resolution."""
import io

from PIL import Image

from facediag.demo.contact_sheet import contact_sheet, contact_sheet_html, png_data
from facediag.demo.faces import FaceSetSpec, generate_faces


def test_contact_sheet_png_and_html(tmp_path):
    fs = generate_faces(tmp_path / "faces", FaceSetSpec(2, 2, 3, 3, seed=1), workers=1)
    png = png_data(contact_sheet(fs.heldout, subjects=8, images=2, vlr_size=16))
    sheet = Image.open(io.BytesIO(png))
    # 3 subjects (all there are) x (2 HR rows + 2 low-resolution rows) of 112-px cells.
    assert sheet.width >= 3 * 112 and sheet.height >= 4 * 112
    assert sheet.width < 4 * 112 + 200
    section = contact_sheet_html(png, "sample faces")
    assert section.startswith("<figure>") and "data:image/png;base64," in section
    assert Image.open(io.BytesIO(png_data(sheet))).size == sheet.size
