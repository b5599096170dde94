"""The shipped default prompts and fsd.prompts' resolution rules."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from fsd.errors import NotFound, ValidationError
from fsd.prompts import (
    DEFAULT_PROMPTS_DIR,
    LANGUAGES,
    PROMPT_NAMES,
    default_prompt_path,
    normalize_lang,
    resolve_prompt,
    wav_info,
)

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "prompts"
REQUIRED = {
    "impatient_offer",
    "callback_confirm",
    "voicemail_greeting",
    "offhours",
    "ivr_sample",
    "ringback_greeting",
    "invalid_choice",
    "goodbye",
    "voicemail_beep",
    "callback_member_announce",
}


def test_required_names_are_in_the_contract():
    assert REQUIRED <= set(PROMPT_NAMES)
    assert len(set(PROMPT_NAMES)) == len(PROMPT_NAMES)
    assert {"ru", "en"} <= set(LANGUAGES)


def test_default_dir_is_the_checked_in_folder():
    assert DEFAULT_PROMPTS_DIR == PROMPTS


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("name", PROMPT_NAMES)
def test_every_prompt_is_telephony_wav(name, lang):
    path = default_prompt_path(name, lang, PROMPTS)
    assert path.is_file(), f"missing {path}"
    rate, channels, width, duration = wav_info(path)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 0.3 <= duration <= 30.0


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("name", PROMPT_NAMES)
def test_wavs_carry_no_metadata_and_are_not_silent(name, lang):
    data = default_prompt_path(name, lang, PROMPTS).read_bytes()
    # canonical RIFF: fmt chunk then data chunk right after, nothing else (no LIST/INFO, no comments)
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert data[36:40] == b"data"
    assert int.from_bytes(data[40:44], "little") == len(data) - 44
    with wave.open(str(default_prompt_path(name, lang, PROMPTS)), "rb") as w:
        frames = w.readframes(w.getnframes())
    peak = max(
        abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) for i in range(0, len(frames), 2)
    )
    assert peak > 3000, "prompt is (nearly) silent"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_spoken_prompt_has_a_text(lang):
    names = set()
    for line in (PROMPTS / lang / "texts.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(line.split(":", 1)[0].strip())
    assert names == set(PROMPT_NAMES) - {"voicemail_beep"}


def test_russian_texts_are_russian_and_english_texts_are_english():
    ru = (PROMPTS / "ru" / "texts.txt").read_text(encoding="utf-8")
    en = (PROMPTS / "en" / "texts.txt").read_text(encoding="utf-8")
    ru_body = "".join(line.split(":", 1)[1] for line in ru.splitlines() if line and not line.startswith("#"))
    en_body = "".join(line.split(":", 1)[1] for line in en.splitlines() if line and not line.startswith("#"))
    assert sum("а" <= c.lower() <= "я" or c in "ёЁ" for c in ru_body) > 0.7 * sum(
        c.isalpha() for c in ru_body
    )
    assert all(c.isascii() for c in en_body)


def test_beep_is_a_1khz_tone():
    with wave.open(str(PROMPTS / "ru" / "voicemail_beep.wav"), "rb") as w:
        frames = w.readframes(w.getnframes())
    samples = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if a < 0 <= b)
    seconds = len(samples) / 8000
    assert abs(crossings / seconds - 1000) < 20
    assert (PROMPTS / "en" / "voicemail_beep.wav").read_bytes() == (
        PROMPTS / "ru" / "voicemail_beep.wav"
    ).read_bytes()


def test_default_prompt_path_and_language_fallback(tmp_path):
    assert default_prompt_path("goodbye", "en", tmp_path) == tmp_path / "en" / "goodbye.wav"
    assert default_prompt_path("goodbye", "ru", tmp_path) == tmp_path / "ru" / "goodbye.wav"
    for other in ("de", "", None, "xx-YY"):
        assert default_prompt_path("goodbye", other, tmp_path) == tmp_path / "ru" / "goodbye.wav"
    assert default_prompt_path("goodbye", "EN-us", tmp_path) == tmp_path / "en" / "goodbye.wav"
    with pytest.raises(NotFound):
        default_prompt_path("no_such_prompt", "ru", tmp_path)


def test_normalize_lang():
    assert normalize_lang("ru_RU.UTF-8") == "ru"
    assert normalize_lang(" En ") == "en"
    assert normalize_lang("fr") == "ru"


def test_resolve_prompt_default(tmp_path):
    assert resolve_prompt("offhours", "en", None, prompts_dir=tmp_path) == str(
        tmp_path / "en" / "offhours.wav"
    )
    assert resolve_prompt("offhours", "en", {}, prompts_dir=tmp_path) == str(tmp_path / "en" / "offhours.wav")
    assert resolve_prompt("offhours", "zz", None, prompts_dir=tmp_path) == str(
        tmp_path / "ru" / "offhours.wav"
    )
    # the default prompts_dir is the shipped folder
    assert resolve_prompt("goodbye", "ru", None) == str(PROMPTS / "ru" / "goodbye.wav")


def test_uploaded_prompt_overrides_default(tmp_path):
    uploaded = {"offhours": "/var/lib/fsd/prompts/42/offhours.wav"}
    assert resolve_prompt("offhours", "ru", uploaded, prompts_dir=tmp_path) == uploaded["offhours"]
    assert resolve_prompt("offhours", "en", uploaded, prompts_dir=tmp_path) == uploaded["offhours"]
    # other prompts keep their defaults
    assert resolve_prompt("goodbye", "en", uploaded, prompts_dir=tmp_path) == str(
        tmp_path / "en" / "goodbye.wav"
    )


def test_uploaded_per_language_wins_over_language_neutral(tmp_path):
    uploaded = {
        ("ivr_sample", "en"): "/up/en.wav",
        "ivr_sample": "/up/any.wav",
        ("goodbye", "ru"): "/up/bye-ru.wav",
    }
    assert resolve_prompt("ivr_sample", "en", uploaded, prompts_dir=tmp_path) == "/up/en.wav"
    assert resolve_prompt("ivr_sample", "ru", uploaded, prompts_dir=tmp_path) == "/up/any.wav"
    # unknown language falls back to 'ru' for uploads too
    assert resolve_prompt("goodbye", "de", uploaded, prompts_dir=tmp_path) == "/up/bye-ru.wav"
    # a Russian-only upload does not replace the English default
    assert resolve_prompt("goodbye", "en", uploaded, prompts_dir=tmp_path) == str(
        tmp_path / "en" / "goodbye.wav"
    )


def test_empty_upload_is_ignored_and_custom_names_need_an_upload(tmp_path):
    assert resolve_prompt("goodbye", "ru", {"goodbye": ""}, prompts_dir=tmp_path) == str(
        tmp_path / "ru" / "goodbye.wav"
    )
    assert resolve_prompt("menu_main", "ru", {"menu_main": "/up/m.wav"}, prompts_dir=tmp_path) == "/up/m.wav"
    with pytest.raises(NotFound):
        resolve_prompt("menu_main", "ru", {}, prompts_dir=tmp_path)


def test_wav_info_reads_other_formats_and_rejects_garbage(tmp_path):
    p = tmp_path / "stereo.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0\0\0" * 8000)
    assert wav_info(p) == (16000, 2, 2, 0.5)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"ID3\x03 this is an mp3")
    with pytest.raises(ValidationError):
        wav_info(bad)
    with pytest.raises(NotFound):
        wav_info(tmp_path / "missing.wav")


@pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng/sox not installed"
)
def test_committed_wavs_are_reproducible():
    r = subprocess.run(
        [str(ROOT / "scripts" / "make-prompts"), "--check"], capture_output=True, text=True, timeout=100
    )
    assert r.returncode == 0, r.stdout + r.stderr
