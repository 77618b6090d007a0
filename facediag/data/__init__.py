"""Dataset discovery, decoding and the gallery/probe protocol."""
from facediag.data.index import DatasetIndex, Record, index_dataset
from facediag.data.protocol import Probe, Protocol, build_protocol

__all__ = ["DatasetIndex", "Record", "index_dataset", "Probe", "Protocol", "build_protocol"]
