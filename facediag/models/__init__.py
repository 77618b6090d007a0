"""EdgeFace variants and their presets, strict and safe checkpoint loading, the loaded-model type, the DSR stage."""
from facediag.models.checkpoint import detect_variant, load_checkpoint, save_state_dict
from facediag.models.dsr import DSR, BicubicDSR, load_dsr
from facediag.models.edgeface import (
    EMBEDDING_DIM, VARIANTS, EdgeFace, LowRankLinear, build_edgeface, expected_layout,
)
from facediag.models.fingerprint import fingerprint_state_dict, sha256_file
from facediag.models.loaded import LoadedModel
from facediag.models.safe_load import StandIn, load_pickled, read_weights_file

__all__ = [
    "BicubicDSR", "DSR", "EMBEDDING_DIM", "EdgeFace", "LoadedModel",
    "LowRankLinear", "StandIn", "VARIANTS", "build_edgeface", "detect_variant",
    "expected_layout", "fingerprint_state_dict", "load_checkpoint", "load_dsr", "load_pickled",
    "read_weights_file", "save_state_dict", "sha256_file",
]
