"""Voice prompts: the standard ones shipped in prompts/ and the company's uploads.

An upload is converted with `sox` (subprocess with a timeout) to what FreeSWITCH plays without
resampling: 8 kHz, mono, 16-bit PCM WAV. Anything sox cannot read is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass

from fsd import prompts as default_prompts
from fsd.domain import rules
from fsd.errors import NotFound, ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos
from fsd.store.models import Prompt

log = logging.getLogger(__name__)

KINDS = ("greeting", "voicemail", "ivr", "offhours", "impatient", "custom")
AUDIO_EXTENSIONS = ("wav", "mp3", "ogg", "oga", "flac", "aiff", "aif", "au", "gsm", "opus")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_DURATION_S = 600
SAMPLE_RATE = 8000


@dataclass(frozen=True)
class DefaultPrompt:
    name: str
    language: str
    duration_ms: int


def convert_to_wav(data: bytes, filename: str, *, timeout_s: float = 30.0) -> bytes:
    """Any audio sox can read → 8 kHz mono 16-bit PCM WAV bytes."""
    if not data:
        raise ValidationError("the file is empty", field="file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB", field="file")
    ext = os.path.splitext(filename or "")[1].lower().lstrip(".")
    if ext not in AUDIO_EXTENSIONS:
        raise ValidationError(f"unsupported file type; upload one of: {', '.join(AUDIO_EXTENSIONS)}", field="file")
    with tempfile.TemporaryDirectory(prefix="fsd-audio-") as tmp:
        src = os.path.join(tmp, "in." + ext)
        dst = os.path.join(tmp, "out.wav")
        with open(src, "wb") as f:
            f.write(data)
        try:
            proc = subprocess.run(["sox", "-V1", src, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                                   "-e", "signed-integer", dst], capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ValidationError("the audio file took too long to convert", field="file") from None
        except FileNotFoundError:
            raise ValidationError("audio conversion is not available on this server (sox missing)",
                                  field="file") from None
        if proc.returncode != 0 or not os.path.exists(dst):
            log.info("audio_convert_failed ext=%s rc=%s err=%s", ext, proc.returncode,
                     proc.stderr.decode(errors="replace")[:200].replace("\n", " "))
            raise ValidationError("the file is not audio that can be read (upload WAV, MP3, OGG or FLAC)",
                                  field="file")
        rate, channels, width, duration = default_prompts.wav_info(dst)
        if duration <= 0.05:
            raise ValidationError("the recording is empty", field="file")
        if duration > MAX_DURATION_S:
            raise ValidationError(f"the recording must be at most {MAX_DURATION_S // 60} minutes long", field="file")
        with open(dst, "rb") as f:
            return f.read()


def _wav_duration_ms(wav: bytes) -> int:
    import io
    import wave

    with wave.open(io.BytesIO(wav), "rb") as w:
        return int(w.getnframes() * 1000 / w.getframerate())


class PromptService(Service):
    def defaults(self, lang: str = "ru") -> list[DefaultPrompt]:
        out = []
        for name in default_prompts.PROMPT_NAMES:
            path = default_prompts.default_prompt_path(name, lang)
            try:
                _, _, _, dur = default_prompts.wav_info(path)
            except (NotFound, ValidationError):
                continue
            out.append(DefaultPrompt(name=name, language=default_prompts.normalize_lang(lang),
                                     duration_ms=int(dur * 1000)))
        return out

    def default_audio(self, name: str, lang: str = "ru") -> bytes:
        path = default_prompts.default_prompt_path(name, lang)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            raise NotFound("prompt not found") from None

    def list(self, actor: Actor, tenant_id: int) -> list[Prompt]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.prompt_list(cur, tenant_id)

    def get(self, actor: Actor, tenant_id: int, prompt_id: int) -> Prompt:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.prompt_get(cur, tenant_id, prompt_id)

    def audio(self, actor: Actor, tenant_id: int, prompt_id: int) -> tuple[Prompt, bytes]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.prompt_get(cur, tenant_id, prompt_id), repos.prompt_audio(cur, tenant_id, prompt_id)

    def upload(self, actor: Actor, tenant_id: int, *, name: str, data: bytes, filename: str,
               kind: str = "custom", language: str = "ru") -> Prompt:
        actor.require_admin(tenant_id)
        name = rules.validate_name(name)
        if kind not in KINDS:
            raise ValidationError(f"kind must be one of: {', '.join(KINDS)}", field="kind")
        language = default_prompts.normalize_lang(language)
        wav = convert_to_wav(data, filename)
        with self.change(actor, tenant_id=tenant_id, action="create", entity="prompt") as ch:
            p = repos.prompt_insert(ch.cur, tenant_id=tenant_id, name=name, kind=kind, language=language,
                                    filename=os.path.basename(filename or "upload")[:200] or "upload",
                                    sample_rate=SAMPLE_RATE, duration_ms=_wav_duration_ms(wav), size_bytes=len(wav),
                                    sha256=hashlib.sha256(wav).hexdigest(), audio=wav)
            ch.entity_id = p.id
            ch.details = {"name": name, "kind": kind, "duration_ms": p.duration_ms}
        return p

    def delete(self, actor: Actor, tenant_id: int, prompt_id: int) -> None:
        actor.require_admin(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="prompt") as ch:
            p = repos.prompt_get(ch.cur, tenant_id, prompt_id)
            if p.tenant_id is None:
                raise NotFound("prompt not found")
            repos.prompt_delete(ch.cur, tenant_id, prompt_id)
            ch.entity_id = prompt_id
            ch.details = {"name": p.name}
