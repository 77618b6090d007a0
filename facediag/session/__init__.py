"""Session: the one place checks get data, models and embeddings from (see session.core).

``from facediag.session import Session, SessionConfig`` is how commands, the runner and tests
build one; checks receive it, or a RoleView of it, and read only the members RoleView lists.
"""
from facediag.session.core import Session
from facediag.session.data import Data, SessionConfig
from facediag.session.pixels import QUALITY_SAMPLE, Pixels
from facediag.session.runtime import ROLES, VIEWS, Embeddings, Runtime
from facediag.session.view import RoleView

__all__ = ["Data", "Embeddings", "Pixels", "QUALITY_SAMPLE", "ROLES", "RoleView", "Runtime", "Session",
           "SessionConfig", "VIEWS"]
