"""Score files: comparisons written in the formats other tools read, and read back from any system.

- files.py: the formats by name (bob4, bob5, bob-csv, openbr, pyeer), writing (streamed, atomic)
  and opening a file to read (the format named or told from the file);
- bob.py, openbr.py, pyeer.py: each tool's format, as that tool reads it;
- chunks.py: what readers hand out (columns of comparisons) and writers take (blocks of probes);
- summary.py: a file summed up as it streams past, for metrics.verification and
  metrics.identification.

Nothing here holds a whole score matrix: writers take a block of probes at a time, readers hand
out a chunk of comparisons at a time. ``facediag scores`` and ``facediag bench scores``
(facediag/bench/scores.py) are built on these.
"""
from facediag.scores.files import DESCRIPTIONS, FORMATS, detect_format, input_paths, open_scores, output_paths, \
    require_format, write_scores
from facediag.scores.chunks import ScoreBlock, ScoreChunk
from facediag.scores.summary import ScoreSummary, summarise

__all__ = ["DESCRIPTIONS", "FORMATS", "ScoreBlock", "ScoreChunk", "ScoreSummary", "detect_format", "input_paths",
           "open_scores", "output_paths", "require_format", "summarise", "write_scores"]
