"""No callable reachable from a pickle is ever invoked: gadgets at the top level or nested in
dicts, lists and configs are refused or come back as inert stand-ins, with or without the
deny-list of known gadget names (which is only there to say what a file tried)."""
import hostile_pickles as H
import pytest
import torch

from facediag.errors import CheckpointError
from facediag.models import safe_load
from facediag.models.checkpoint import load_checkpoint
from facediag.models.safe_load import StandIn, load_pickled, to_plain

GADGETS = list(H.gadgets(H.Path("/marker")))
NESTINGS = list(H.nestings())


def all_stand_ins_are_inert(obj):
    """Everything loaded is data: no real function, class or module came back."""
    seen, todo = 0, [obj]
    while todo:
        x = todo.pop()
        seen += 1
        assert not callable(x) or isinstance(x, type) and issubclass(x, StandIn), x
        if isinstance(x, dict):
            todo += list(x.keys()) + list(x.values())
        elif isinstance(x, (list, tuple)):
            todo += list(x)
        elif isinstance(x, StandIn):
            todo += [x.args, x.fields, x.state]
    return seen


@pytest.mark.parametrize("deny_list", [True, False], ids=["deny-list", "no-deny-list"])
@pytest.mark.parametrize("where", NESTINGS)
@pytest.mark.parametrize("gadget", GADGETS)
def test_gadgets_are_refused_or_inert_wherever_they_sit(tmp_path, monkeypatch, gadget, where,
                                                        deny_list):
    if not deny_list:  # safety must not depend on knowing the dangerous names
        monkeypatch.setattr(safe_load, "_is_gadget", lambda path: False)
    marker = tmp_path / "pwned"
    body = H.nestings()[where](H.gadgets(marker)[gadget])
    path = H.write_torch_zip(tmp_path / "evil.pth", H.pickle_bytes(body))
    before = path.read_bytes()
    try:
        loaded = load_pickled(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(e).startswith("evil.pth: ")
    else:
        all_stand_ins_are_inert(loaded)
        to_plain(loaded)  # rendering it calls nothing either
    assert not marker.exists()
    assert path.read_bytes() == before


@pytest.mark.parametrize("gadget", ["cProfile.run", "profile.run", "pdb.run"])
def test_profilers_and_debuggers_are_named_gadgets(tmp_path, gadget):
    marker = tmp_path / "pwned"
    path = H.write_torch_zip(tmp_path / "evil.pth", H.pickle_bytes(
        H.nestings()["config x3 in list"](H.gadgets(marker)[gadget])))
    with pytest.raises(CheckpointError, match=f"refused, the pickle calls {gadget}"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.fixture
def spy(tmp_path):
    """A real function reachable from a pickle (allow-listed by someone in the process):
    the loader must never become a way to call it."""
    marker = tmp_path / "called"

    def touch(*args, **kwargs):
        marker.write_text(repr(args))
        return {}

    with torch.serialization.safe_globals([(touch, "facediag_spy.touch")]):
        yield marker


def test_build_cannot_plant_a_setstate_that_the_next_build_calls(tmp_path, spy):
    # BUILD {"__setstate__": spy}, then BUILD again: torch calls inst.__setstate__(state),
    # which would find the planted attribute if stand-ins had an instance __dict__.
    body = H.dict_of(config=H.obj("__main__.Config", H.dict_of(__setstate__=H.g(
        "facediag_spy.touch"))) + H.s("again") + H.BUILD)
    path = H.write_torch_zip(tmp_path / "shadow.pth", H.pickle_bytes(body))
    loaded = load_pickled(path)
    assert not spy.exists()
    config = loaded["config"]
    assert isinstance(config, StandIn) and config.state == "again"
    assert set(config.fields) == {"__setstate__"}  # held as data, nothing more


def test_a_stand_in_offers_no_duck_typed_methods(tmp_path, spy):
    # OrderedDict(x) calls x.keys() when x has one: a pickled field named "keys" holding
    # a real function would be called by torch's own allow-listed constructor.
    stand_in = H.obj("__main__.Config", H.dict_of(keys=H.g("facediag_spy.touch")))
    path = H.write_torch_zip(tmp_path / "keys.pth", H.pickle_bytes(
        H.dict_of(x=H.call(H.g("collections.OrderedDict"), stand_in))))
    with pytest.raises(CheckpointError):
        load_pickled(path)
    assert not spy.exists()


def test_stand_ins_are_read_only():
    cls = safe_load._standin_class("__main__.Config")
    inst = cls(1, 2)
    inst.__setstate__({"lr": 0.1, "__setstate__": "x", "_standin_args": "x"})
    assert inst.args == (1, 2) and inst.fields["lr"] == 0.1
    assert not hasattr(inst, "__dict__") and not hasattr(inst, "lr")
    with pytest.raises(AttributeError):
        inst.keys = print
    assert to_plain(inst) == {"__class__": "__main__.Config", "__args__": [1, 2], "lr": 0.1,
                              "__setstate__": "x", "_standin_args": "x"}


def test_a_field_cannot_pose_as_the_class():
    inst = safe_load._standin_class("__main__.Config")()
    inst.__setstate__({"__class__": "builtins.dict", "lr": 0.1})
    assert to_plain(inst) == {"__class__": "__main__.Config", "lr": 0.1}
