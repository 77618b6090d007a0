"""The failure that started facediag, re-enacted in a plain PyTorch loop with the Monitor beside it.

EdgeFace-xxs (float) fine-tuned on ORL people 1–20 with the seed's objective
1 − cos(f(DSR_i), f(HR_i)) (16 px, bicubic as the DSR), validated as the seed validated (each
held-out DSR output against its own HR image) and by the Monitor on people 21–40. The seed's
metric climbs toward 1 while the Monitor names the failure and says stop; the same loop with a
supervised contrastive objective is not flagged. Both loops are short: the collapse shows within
five steps (see benchmarks/README.md for the monitor's cost).
"""
import pytest
import torch
import torch.nn.functional as F

from facediag.data.images import normalize
from facediag.monitor import Monitor
from facediag.monitor.history import read_history
from facediag.train.losses import paired_cosine_loss, supcon_loss
from helpers import copy_orl_subset, orl_views

STEPS, EVERY = 10, 5  # three monitor calls: the pretrained weights, then every five steps
FAILURES = {"embedding-collapse", "pair-memorization"}


def seed_validation(model, hr, lr) -> float:
    """The seed's own validation: each DSR output's cosine to its own HR image, averaged."""
    model.eval()
    with torch.no_grad():
        sim = F.cosine_similarity(model(normalize(lr)), model(normalize(hr)), dim=1).mean().item()
    model.train()
    return sim


def training_loop(objective, weights, train, held, history):
    """A user's loop: AdamW, random batches of 32 HR/DSR views, the monitor every EVERY steps."""
    from facediag.models.checkpoint import load_checkpoint

    torch.manual_seed(0)
    model = load_checkpoint(weights).model.train()
    hr, lr, labels = train
    held_hr, held_lr = held[1]
    monitor = Monitor(data=held[0], vlr_size=16, device="cpu", history=history)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    supcon = supcon_loss()
    gen = torch.Generator().manual_seed(0)
    results, paired = [], []
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            results.append(monitor(model, step=step))
            paired.append(seed_validation(model, held_hr, held_lr))
        if step == STEPS:
            break
        idx = torch.randperm(len(hr), generator=gen)[:32]
        f_lr, f_hr = model(normalize(lr[idx])), model(normalize(hr[idx]))
        if objective == "paired":
            loss = paired_cosine_loss(f_lr, f_hr)
        else:  # every view of a person is a positive: what gallery matching needs
            loss = supcon(torch.cat([f_lr, f_hr]), torch.cat([labels[idx], labels[idx]]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return results, paired


@pytest.fixture(scope="module")
def orl_split(orl_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("orl-split")
    train = orl_views(copy_orl_subset(orl_root, root / "train", range(1, 21)))
    held = copy_orl_subset(orl_root, root / "held", range(21, 41))
    hr, lr, _ = orl_views(held)
    probes = torch.arange(len(hr)) % 10 >= 3  # each person's images 4–10: the probes
    return train, (held, (hr[probes], lr[probes]))


@pytest.fixture(scope="module")
def seed_run(float_weights, orl_split, tmp_path_factory):
    history = tmp_path_factory.mktemp("seed") / "monitor.jsonl"
    return (*training_loop("paired", float_weights, *orl_split, history), history)


def test_the_seed_is_caught_while_its_paired_metric_climbs(seed_run):
    results, paired, history = seed_run
    first, *later = results
    assert not FAILURES & set(first.diagnoses) and not first.should_stop and first.trends == []
    assert paired == sorted(paired) and paired[-1] > 0.95  # what the seed's training reported: all is well
    caught = [r for r in later if FAILURES & set(r.diagnoses)]
    assert caught and caught[0] is later[0]  # by the first call after training began
    assert later[0].should_stop and any(d in later[0].reason for d in FAILURES)
    assert "paired-up-genuine-down" in later[0].trends  # the signature, as a trend against the first call
    assert [r["step"] for r in read_history(history)] == [0, EVERY, 2 * EVERY]
    assert read_history(history)[1] == later[0].record()


def test_supervised_contrastive_of_the_same_length_is_not_flagged(float_weights, orl_split, tmp_path):
    results, paired = training_loop("supcon", float_weights, *orl_split, tmp_path / "monitor.jsonl")
    assert not any(FAILURES & set(r.diagnoses) for r in results)
    assert not any(r.should_stop for r in results)
    assert results[-1].metrics["identification.rank1"] >= results[0].metrics["identification.rank1"]
