"""RoleView lists what a check may reach of a Session: every member the checks read is on it,
and nothing else of the Session is reachable through it."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import facediag.checks
from facediag.checks.base import Check, Status
from facediag.checks.registry import run_check
from facediag.session import RoleView, Session, SessionConfig
from helpers import loaded_model, write_demo_faces


@pytest.fixture
def view(tmp_path):
    torch.manual_seed(0)
    model = loaded_model(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32)))
    session = Session(SessionConfig(data=write_demo_faces(tmp_path / "faces", 3), use_cache=False,
                                    progress=False, device="cpu"), models={"model": model})
    return session.for_role("model")


def _members_checks_read() -> set[str]:
    names = set()
    for path in Path(facediag.checks.__file__).parent.glob("*.py"):
        names |= set(re.findall(r"\bctx\.([A-Za-z_]\w*)", path.read_text()))
    return names


def test_every_member_a_check_reads_is_on_the_view():
    read = _members_checks_read()
    assert {"protocol", "evaluation", "thumbnail", "sample_pixels"} <= read  # the scan finds them
    assert not read - set(dir(RoleView)), "checks read members RoleView does not list"


def test_the_view_has_no_passthrough(view):
    assert view.protocol is view.session.protocol  # listed: the Session's own
    for hidden in ("pixels", "runtime", "data", "aligner", "config", "prepare", "for_role", "problems"):
        assert hasattr(view.session, hidden)
        with pytest.raises(AttributeError):
            getattr(view, hidden)


class _ReachesPastTheView(Check):
    name, title = "reaches-past-the-view", "reads a member the view does not list"

    def run(self, ctx, params):
        ctx.aligner  # noqa: B018 - the reach under test
        return self.result(Status.PASS, "reached")


def test_a_check_reaching_past_the_view_errors(view):
    res = run_check(_ReachesPastTheView(), view, {}, view.available)
    assert res.status == Status.ERROR and "AttributeError" in res.summary and "aligner" in res.summary
    assert run_check(_ReachesPastTheView(), view.session, {}, view.session.available).status == Status.PASS
