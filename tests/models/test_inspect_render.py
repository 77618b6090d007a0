"""`facediag inspect`'s table shows what the file holds literally: text from the file is
never read as Rich markup."""
import io

import torch
from rich.console import Console

from facediag.inspect import inspect_dict, render_inspect
from facediag.models import build_edgeface, load_checkpoint


def test_markup_in_metadata_is_shown_not_interpreted(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "[red]run.pth"
    note = "[/x] [bold red]boom[/]"
    torch.save({"backbone_state_dict": build_edgeface("edgeface_xxs").state_dict(),
                "config": {"note": note}, "[/key]": 1}, path)
    out = io.StringIO()
    render_inspect(inspect_dict(load_checkpoint(path)), Console(file=out, width=300))
    text = out.getvalue()
    assert note in text and "[/key]" in text and "[red]run.pth" in text
