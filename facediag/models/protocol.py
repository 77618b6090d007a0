"""Where session.py still imports the loaded-model names from; they live in models/loaded.py.

To be removed once the Session (being split into a package) imports them from there.
"""
from facediag.models.loaded import LoadedModel, embedding_fingerprint, preset_of

__all__ = ["LoadedModel", "embedding_fingerprint", "preset_of"]
