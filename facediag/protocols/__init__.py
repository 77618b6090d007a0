"""Protocols: how a benchmark pairs things up and what its scores mean.

``gallery``: HR templates vs DSR probes (closed and open set, paired scores), the protocol
every check, the trainer's validation, bench and compare share. ``resampling``: the same
protocol's metrics under the subject bootstrap, for compare and the gate.
"""
