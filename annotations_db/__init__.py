"""annotations_db: the review record (readers, studies, drafts, sessions, decisions, events, sign-offs,
experiments, fine-tune runs) behind ``ReviewService``. Imports neither gazex_core, training nor app."""

from .records import (AccessDenied, BoxDecision, EventAck, InvalidInput, InvalidTransition, ModelVersionInfo,
                      NotFound, PendingItems, ReaderInfo, ReviewError, SentenceDecision, SessionState, StudyInfo,
                      WorklistItem)


def __getattr__(name: str):  # SQLAlchemy and the models load only when the service is first used
    if name == "ReviewService":
        from .service import ReviewService

        return ReviewService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccessDenied", "BoxDecision", "EventAck", "InvalidInput", "InvalidTransition", "ModelVersionInfo", "NotFound",
    "PendingItems", "ReaderInfo", "ReviewError", "ReviewService", "SentenceDecision", "SessionState", "StudyInfo",
    "WorklistItem",
]
