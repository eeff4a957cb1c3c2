"""Build the engine's parts from settings. One place decides what is loaded where:
the worker calls :func:`build_engine` after the fork; the CLI calls it directly."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.orm import sessionmaker

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
from triage.similar_flags import SimilarCases
from triage.store.consultations import ConsultationStore
from triage.store.db import create_schema, make_engine, make_sessionmaker
from triage.store.knowledge import KnowledgeRepo, to_knowledge_base
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
    similar = None
    if settings.similar_flags and embedder is not None and kb.red_flag_examples:
        similar = SimilarCases(kb.red_flag_examples, embedder, red_flags, settings.similar_flag_margin,
                               settings.instance_dir / "cache", embed_query=retriever.query_vector)  # fmt: skip
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
    return TriageEngine(kb, retriever, red_flags, decider, followup, booking, similar)


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


def open_database(settings: Settings) -> sessionmaker:
    """The database, migrated to the newest schema."""
    engine = make_engine(settings.database)
    create_schema(engine, lock_dir=settings.instance_dir)
    return make_sessionmaker(engine)


def build_consultations(settings: Settings, sessions: sessionmaker | None = None) -> ConsultationStore:
    return ConsultationStore(sessions or open_database(settings), settings.retention_days)


def load_knowledge(settings: Settings, repo: KnowledgeRepo | None) -> KnowledgeBase:
    """The active published version from the database, or the shipped YAML seed when
    nothing has been published yet."""
    if repo is not None and (number := repo.active_number()) is not None:
        content = repo.version_content(number)
        assert content is not None
        return to_knowledge_base(content, version=f"v{number}")
    return KnowledgeBase.load(settings.knowledge_dir)


def prepare_database(settings: Settings) -> KnowledgeRepo:
    """First start: migrate, and load the shipped knowledge base as version 1; after an
    upgrade, adopt the kinds of document the new release ships."""
    repo = KnowledgeRepo(open_database(settings))
    if repo.is_empty():
        repo.import_seed(settings.knowledge_dir)
    else:
        repo.adopt_new_documents(settings.knowledge_dir)
    return repo


def warm_index(settings: Settings) -> None:
    """Build the retrieval index (and its on-disk embedding cache) with every core, once,
    before the single-threaded workers start and load it from the cache."""
    build_engine(settings.model_copy(update={"n_threads": os.cpu_count() or 1}))
