"""Optional image understanding: a multimodal Gemma-3-family GGUF (MedGemma 4B with its
projector file) turns a patient's photo into a short, neutral description, which then
goes through the same triage as text: red flags, retrieval, rules, guardrails.

Not configured (the default), an image gets a kind request for a text description.
llama.cpp needs its multimodal library (mtmd) for this; a build without it reports
the model as unavailable and the text request is sent instead.
"""

from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path

from triage.guardrails import is_safe
from triage.llm import ModelUnavailable

log = logging.getLogger(__name__)

PROMPT = (
    "请用一两句中文客观描述图片中可见的身体部位和表现（例如皮疹、红肿、伤口、颜色、大小），"
    "不要诊断，不要提任何药物。如果图片与身体不适无关，只回答：无关图片。"
)
MAX_IMAGE_BYTES = 5 * 1024 * 1024


class ImageDescriber:
    def __init__(self, model_path: Path, projector_path: Path, n_ctx: int = 4096, n_threads: int = 1,
                 n_gpu_layers: int = 0) -> None:  # fmt: skip
        self.model_path, self.projector_path = Path(model_path), Path(projector_path)
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers
        self._llm = None
        self._lock = threading.Lock()

    def load(self) -> ImageDescriber:
        for path in (self.model_path, self.projector_path):
            if not path.is_file():
                raise ModelUnavailable(f"vision file not found: {path}")
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import MTMDChatHandler

            handler = MTMDChatHandler(clip_model_path=str(self.projector_path), verbose=False)
            self._llm = Llama(model_path=str(self.model_path), chat_handler=handler, n_ctx=self.n_ctx,
                              n_threads=self.n_threads, n_gpu_layers=self.n_gpu_layers, verbose=False)  # fmt: skip
        except (ImportError, OSError, ValueError) as exc:
            raise ModelUnavailable(f"vision model failed to load: {exc}") from exc
        return self

    def describe(self, image: bytes, mime: str = "image/jpeg") -> str | None:
        """A short description, or None when the image is unusable or unrelated."""
        if self._llm is None or not image or len(image) > MAX_IMAGE_BYTES:
            return None
        data_uri = f"data:{mime};base64,{base64.b64encode(image).decode()}"
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri}},
                                                 {"type": "text", "text": PROMPT}]}]  # fmt: skip
        try:
            with self._lock:
                out = self._llm.create_chat_completion(messages=messages, max_tokens=120, temperature=0)
        except Exception as exc:  # a failed description must not lose the patient's message
            log.warning("image description failed: %s", type(exc).__name__)
            return None
        text = str(out["choices"][0]["message"]["content"] or "").strip()[:200]
        if not text or "无关图片" in text or not is_safe(text):
            return None
        return text
