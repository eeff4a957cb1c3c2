"""Build the engine's parts from settings. One place decides what is loaded where:
the worker calls :func:`build_engine` after the fork; the CLI calls it directly."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from triage.config import Settings
from triage.decision import Decider
from triage.followup import FollowUp
from triage.knowledge.loader import KnowledgeBase
from triage.llm import LanguageModel, ModelConfig, ModelUnavailable, default_model_path
from triage.pipeline import TriageEngine
from triage.redflags import RedFlagRules
from triage.replies import Booking
from triage.retrieval.embedder import make_embedder
from triage.retrieval.hybrid import Retriever
from triage.store.consultations import ConsultationStore
from triage.store.db import create_schema, make_engine, make_sessionmaker
from triage.vision import ImageDescriber

log = logging.getLogger(__name__)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub


def build_model(settings: Settings) -> LanguageModel | None:
    if settings.model_mode == "off":
        return None
    path = settings.model_path or default_model_path(settings.instance_dir)
    config = ModelConfig(
        path=Path(path),
        chat_format=settings.chat_format,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads_batch,
        n_gpu_layers=settings.n_gpu_layers,
        timeout_s=settings.model_timeout_s,
    )
    model = LanguageModel(config)
    try:
        model.load()
    except ModelUnavailable as exc:  # the service still answers from retrieval
        log.error("model unavailable, answering from retrieval: %s", exc)
    return model


def build_engine(
    settings: Settings, kb: KnowledgeBase | None = None, model: LanguageModel | None = None
) -> TriageEngine:
    kb = kb or KnowledgeBase.load(settings.knowledge_dir)
    embedder = make_embedder(settings.embedder, settings.embedder_path, settings.n_threads)
    retriever = Retriever(kb, embedder, cache_dir=settings.instance_dir / "cache")
    red_flags = RedFlagRules.from_dict(kb.red_flags)
    decider = Decider(
        kb,
        model,
        mode=settings.model_mode,
        model_weight=settings.model_weight,
        top_k=settings.top_k,
        child_age=settings.child_age,
    )
    followup = FollowUp(kb, max_questions=settings.max_questions)
    booking = Booking(settings.miniprogram_appid, settings.booking_page)
    return TriageEngine(kb, retriever, red_flags, decider, followup, booking)


def build_vision(settings: Settings) -> ImageDescriber | None:
    """The optional multimodal model; None (images get a text request) when unset or broken."""
    if not (settings.vision_model_path and settings.vision_projector_path):
        return None
    try:
        return ImageDescriber(settings.vision_model_path, settings.vision_projector_path,
                              n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers).load()  # fmt: skip
    except ModelUnavailable as exc:
        log.error("vision model unavailable, images get a text request: %s", exc)
        return None


def build_consultations(settings: Settings) -> ConsultationStore:
    engine = make_engine(settings.database)
    create_schema(engine)
    return ConsultationStore(make_sessionmaker(engine), settings.retention_days)


def warm_index(settings: Settings) -> None:
    """Build the retrieval index (and its on-disk embedding cache) with every core, once,
    before the single-threaded workers start and load it from the cache."""
    build_engine(settings.model_copy(update={"n_threads": os.cpu_count() or 1}))
