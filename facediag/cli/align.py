"""align: raw photos in, aligned 112×112 crops out (facediag.align)."""
from __future__ import annotations

import click

from facediag.cli.options import DEVICE, LAYOUT, PATH, QUIET, console, handle_errors
from facediag.data.detect import PHOTO_MIN_FACE
from facediag.device import resolve_device


@click.command()
@click.argument("src", type=PATH)
@click.argument("dst", type=PATH)
@LAYOUT(help="Layout of SRC (paired, folders, manifest CSV); auto detects it.")
@click.option("--min-face-size", type=click.IntRange(min=8), default=PHOTO_MIN_FACE, show_default=True,
              help="Smallest face MTCNN looks for, in pixels of the decoded image (larger is faster).")
@DEVICE()
@QUIET()
@handle_errors
def align(src, dst, layout, min_face_size, device, quiet):
    """Detect five landmarks (MTCNN; or the manifest's lm0x..lm4y) and write ArcFace-aligned crops.

    DST gets the crops in SRC's layout (as PNG), alignment.csv (landmarks, detection score,
    residual, rotation and scale per image) and flagged.csv (no face, several faces,
    unreadable). Resumable: run it again and it skips what is done. Never writes inside SRC.
    Needs the align extra: pip install facenet-pytorch==2.5.3 scikit-image.

    \b
    Example:
      facediag align raw_photos/ aligned/
    """
    # loaded when the command runs, not at every start of the CLI
    from facediag.align import align_dataset

    summary = align_dataset(src, dst, layout=layout, min_face_size=min_face_size,
                            device=str(resolve_device(device)), progress=not quiet)
    console.print(f"aligned {summary.aligned}, already done {summary.skipped}, flagged {len(summary.flagged)} "
                  f"(see {dst / 'flagged.csv'})")
