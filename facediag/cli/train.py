"""train-contrastive: the fix, a contrastive fine-tune validated by gallery matching."""
from __future__ import annotations

import click

from facediag.models.presets import DEFAULT_THRESHOLD
from facediag.outputs import check_outputs, out_file
from facediag.train.config import TrainConfig, output_paths, parse_subjects

from facediag.cli.options import (
    ALIGN,
    ARCH,
    DEGRADE,
    DEVICE,
    DSR,
    DSR_CODE_HELP,
    DSR_WEIGHTS,
    GALLERY_PER_SUBJECT,
    LAYOUT,
    OUT,
    PATH,
    QUIET,
    SEED,
    SUBJECT_REGEX,
    TRUST_DSR_CODE,
    config_default,
    console,
    handle_errors,
)


@click.command("train-contrastive")
@click.option("--weights", "-w", type=PATH,
              help="Pretrained EdgeFace to fine-tune (never overwritten). Omit to train --arch from scratch.")
@ARCH(default="edgeface_xxs", show_default=True, help="Variant to train from scratch when no --weights.")
@click.option("--data", type=PATH, required=True,
              help="Training faces (paired, folders or manifest layout).")
@OUT(required=True,
     help="Output state_dict; the sidecar .json, .history.json, .curves.png and .resume.pt go beside it.")
@click.option("--val-data", type=PATH, help="Validation faces. Default: hold out part of --data.")
@click.option("--val-split", type=click.Choice(["subjects", "images"]), default="subjects", show_default=True,
              help="Without --val-data: validate on held-out subjects, or on held-out images of every subject.")
@click.option("--val-fraction", type=float, default=0.25, show_default=True,
              help="Share of subjects (or images) held out.")
@click.option("--train-subjects", help="Subjects that train, e.g. 's1-s30' or 'a,b,c' (default: all not validated).")
@click.option("--val-subjects", help="Subjects that validate, e.g. 's31-s40'.")
@click.option("--seen-holdout", type=int, default=0, show_default=True,
              help="Also hold out this many images per training subject and report their rank-1 ('seen' column).")
@LAYOUT(default=config_default(TrainConfig, "layout"), help=None)
@SUBJECT_REGEX(help="Subject id from a paired-layout filename.")
@GALLERY_PER_SUBJECT(type=int, default=config_default(TrainConfig, "gallery_per_subject"),
                     help="HR images per validation subject that enrol.")
@DSR(help=f"Super-resolution model (TorchScript file or module:factory). Default: bicubic. {DSR_CODE_HELP}")
@DSR_WEIGHTS()
@TRUST_DSR_CODE()
@click.option("--vlr-size", type=int, default=config_default(TrainConfig, "vlr_size"), show_default=True,
              help="Images without a VLR file are degraded to this size (--degrade), then DSR'd.")
@DEGRADE(default=config_default(TrainConfig, "degrade"),
         help="How training and validation images without a VLR file are degraded: bicubic (area) or "
              "realistic (blur, noise, JPEG drawn per image, seeded by its content).")
@ALIGN(default=config_default(TrainConfig, "align"),
       help="mtcnn: detect each HR face (training and validation) and warp it to the ArcFace 112 template "
            "before degradation and DSR (landmarks cached by image content; no face: used as given); auto: "
            "only when the alignment check finds the training faces not aligned. Needs the align extra.")
@click.option("--views", type=click.Choice(["hr+lr", "hr"]), default="hr+lr", show_default=True,
              help="hr+lr: each image as HR and as DSR(VLR); hr: HR-only pretraining.")
@click.option("--objective", type=click.Choice(["supcon", "paired", "instance"]), default="supcon", show_default=True,
              help="supcon is the fix. paired and instance reproduce the known failures on purpose.")
@click.option("--batch-subjects", "-P", type=int, default=16, show_default=True, help="Subjects per batch.")
@click.option("--images-per-subject", "-K", type=int, default=4, show_default=True,
              help="Images per subject per batch.")
@click.option("--temperature", type=float, default=0.07, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option("--warmup-steps", type=int, help="Linear warm-up before cosine decay (default: 5% of all steps).")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--steps-per-epoch", type=int, help="Default: one pass over the training images.")
@click.option("--anchor-weight", type=float, default=0.0, show_default=True,
              help="Keep HR embeddings near the frozen pretrained model's (1 - cos), weighted by this.")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=DEFAULT_THRESHOLD, show_default=True,
              help="Operating point reported by validation (default: the EdgeFace preset's).")
@click.option("--patience", type=int, help="Also stop after this many epochs without a better validation rank-1.")
@SEED()
@click.option("--no-hflip", is_flag=True, help="No random horizontal flips.")
@DEVICE()
@click.option("--no-amp", is_flag=True, help="No bf16 autocast on CUDA.")
@click.option("--resume", is_flag=True, help="Continue from the .resume.pt state beside --out.")
@click.option("--save-every", type=int, help="Also save the resume state every N steps (default: each epoch).")
@QUIET()
@handle_errors
def train_contrastive(weights, arch, data, out, val_data, val_split, val_fraction, train_subjects,
                      val_subjects, seen_holdout, layout, subject_regex, gallery_per_subject, dsr,
                      dsr_weights, vlr_size, degrade, align, views, objective, batch_subjects, images_per_subject,
                      temperature, lr, weight_decay, warmup_steps, epochs, steps_per_epoch,
                      anchor_weight, threshold, patience, seed, no_hflip, device, no_amp, resume,
                      save_every, quiet):
    """Fine-tune EdgeFace so DSR probes match their person's HR gallery; validate every
    epoch by gallery matching.

    Batches of P subjects × K images, each image as HR and as DSR(VLR); supervised
    contrastive loss over [DSR; HR] with subject labels; AdamW with warm-up and cosine
    decay. The checkpoint kept is the best by held-out gallery rank-1, never by paired
    similarity (shown beside it). Validation is a facediag.Monitor call on the held-out
    set (run-all's monitor suite: its numbers, diagnoses and trends); the run stops early
    when the Monitor says stop (collapse, pair memorisation, a rank-1 drop), or after
    --patience epochs without a better rank-1. Several GPUs: launch with torchrun.

    \b
    Examples:
      facediag train-contrastive -w edgeface_xxs.pt --data faces/ --out edgeface_contrastive.pth
      facediag train-contrastive -w edgeface_xxs.pt --data orl_faces --train-subjects s1-s30 \\
          --val-subjects s31-s40 --seen-holdout 3 --epochs 10 --out orl_ft.pth
      facediag train-contrastive ... --out orl_ft.pth --resume     # after Ctrl-C
      torchrun --nproc_per_node 4 -m facediag.cli train-contrastive ...
    """
    # the trainer loads when the command runs, not at every start of the CLI
    from facediag.train.trainer import train_contrastive as run_training

    # every file the run writes (the checkpoint and the files beside it), before any work
    check_outputs([o for role, p in output_paths(out).items()
                   for o in out_file("--out" if role == "out" else f"the {role} file of --out", p)],
                  inputs=[("--weights", weights), ("--dsr", dsr), ("--dsr-weights", dsr_weights)],
                  roots=[("--data", data), ("--val-data", val_data)])
    cfg = TrainConfig(
        weights=weights, arch=arch, data=data, out=out, val_data=val_data, val_split=val_split,
        val_fraction=val_fraction, train_subjects=parse_subjects(train_subjects),
        val_subjects=parse_subjects(val_subjects), seen_holdout=seen_holdout, layout=layout,
        subject_regex=subject_regex, gallery_per_subject=gallery_per_subject, dsr=dsr,
        dsr_weights=dsr_weights, vlr_size=vlr_size, degrade=degrade, align=align, views=views, objective=objective,
        batch_subjects=batch_subjects, images_per_subject=images_per_subject,
        temperature=temperature, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
        epochs=epochs, steps_per_epoch=steps_per_epoch, anchor_weight=anchor_weight,
        threshold=threshold, patience=patience, seed=seed, hflip=not no_hflip, device=device,
        amp=not no_amp, resume=resume, save_every=save_every, progress=not quiet)
    run_training(cfg, console=console)
