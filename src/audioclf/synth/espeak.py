"""eSpeak NG text-to-speech through its C library (shipped by the `espeakng-loader` wheel), via ctypes.

Written by hand because no maintained Python package wraps the library's synthesis calls without also
pulling a phonemizer stack; this is the handful of functions from `speak_lib.h` that synthesis needs."""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 0x02
ESPEAK_CHARS_UTF8 = 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechError(RuntimeError):
    """eSpeak NG is missing or refused a voice or text."""


class Espeak:
    """One initialised eSpeak NG library; `speak` returns float32 mono audio at `rate`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise SpeechError("text-to-speech needs eSpeak NG: pip install espeakng-loader") from None
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise SpeechError(f"eSpeak NG failed to initialise (code {rate})")
        self.rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept on self: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    def _collect(self, samples: ctypes.POINTER(ctypes.c_short), count: int, _events: int) -> int:
        if samples and count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def speak(
        self, text: str, voice: str, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50, seed: int = 0
    ) -> np.ndarray:
        """Synthesize `text` with `voice` (e.g. "en-us+m3"); words per minute, pitch and range 0-100.
        The output depends on `seed` and on what this process synthesized before (the library keeps
        state across calls that no call resets), so a fresh process gives repeatable audio."""
        with self._lock:
            self._lib.espeak_ng_SetRandSeed(seed)
            if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise SpeechError(f"eSpeak NG has no voice '{voice}'")
            for param, value in ((PARAM_RATE, rate_wpm), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range)):
                self._lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            status = self._lib.espeak_Synth(data, len(data), 0, 0, 0, ESPEAK_CHARS_UTF8, None, None)
            if status != EE_OK:
                raise SpeechError(f"eSpeak NG could not speak {text!r} (code {status})")
            self._lib.espeak_Synchronize()
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return (pcm.astype(np.float32) / 32768.0)


@lru_cache(maxsize=1)
def espeak() -> Espeak:
    """The process's one eSpeak NG instance (the library keeps global state)."""
    return Espeak()
