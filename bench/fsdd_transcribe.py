"""How much of each FSDD speaker's words the pretrained Whisper tiny.en recognizes by itself: zero-shot
transcription of every clip with the checkpoint's own decoder, scored as a digit ("six", "6", "oh" for 0).
No classifier of ours is involved: it is a rough measure of how recognizable each speaker's clips are to a
model that never saw FSDD, to read beside leave-one-speaker-out accuracy (see README, "Real-data check").
Whisper often hears nothing in a clip that starts right at the word, so every clip is also transcribed with
0.3 s of silence put before it. Beside it, per speaker: median clip length, and median level of the first
and last 10 ms against the clip's loudest 10 ms (how tightly the recordings were cut).

    python bench/fsdd_transcribe.py              # 10 takes of each digit per speaker, about 6 min on 2 cores
    python bench/fsdd_transcribe.py --takes 50   # all 2,000 clips, about 30 min
    python bench/fsdd_transcribe.py --quick      # 1 take of each digit per speaker: checks the script
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import FSDD, WHISPER_TINY_EN, bench_parser, print_table, quiet_transformers, require_shared, write_results

SPEAKERS = ("george", "jackson", "lucas", "nicolas")
WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
         "seven": "7", "eight": "8", "nine": "9"}
BATCH = 25
LEAD_SILENCE_S = (0.0, 0.3)


def main() -> None:
    parser = bench_parser(__doc__, "1 take of each digit per speaker.", "fsdd_transcribe")
    parser.add_argument("--takes", type=int, default=10, help="Takes of each digit per speaker (FSDD has 50).")
    args = parser.parse_args()
    takes = 1 if args.quick else args.takes
    require_shared()
    quiet_transformers()
    clips = [clip for clip in sorted(FSDD.glob("*.wav"))
             if clip.stem.split("_")[1] in SPEAKERS and int(clip.stem.split("_")[2]) < takes]
    start = time.perf_counter()
    scores = {f"{lead} s": score(clips, transcribe(clips, lead)) for lead in LEAD_SILENCE_S}
    results: dict[str, Any] = {"model": "whisper-tiny.en (its own decoder, greedy)", "clips": len(clips),
                               "wall_s": round(time.perf_counter() - start, 1), "lead_silence": scores,
                               "cut": cut_tightness(clips)}
    show(results)
    print(f"wrote {write_results('fsdd_transcribe', results, args.output)}")


def transcribe(clips: list[Path], lead_silence_s: float) -> list[str]:
    import torch
    from tqdm.auto import tqdm
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from audioclf.audio import load_audio

    processor = WhisperProcessor.from_pretrained(WHISPER_TINY_EN)
    model = WhisperForConditionalGeneration.from_pretrained(WHISPER_TINY_EN, dtype=torch.float32).eval()
    rate = processor.feature_extractor.sampling_rate
    silence = np.zeros(round(lead_silence_s * rate), dtype=np.float32)
    texts: list[str] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(clips), BATCH), desc=f"transcribing, {lead_silence_s} s before", unit="batch"):
            waves = [np.concatenate([silence, load_audio(clip, rate)]) for clip in clips[start:start + BATCH]]
            features = processor(waves, sampling_rate=rate, return_tensors="pt").input_features
            texts += processor.batch_decode(model.generate(features, max_new_tokens=8), skip_special_tokens=True)
    return texts


def cut_tightness(clips: list[Path]) -> dict[str, dict[str, float]]:
    """Per speaker, medians of: clip length (s), first and last 10 ms level in dB below the loudest 10 ms."""
    from audioclf.audio import decode

    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for clip in clips:
        wave, rate = decode(clip)
        frame = rate // 100
        levels = 10 * np.log10((wave[: len(wave) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1) + 1e-12)
        rows[clip.stem.split("_")[1]].append((len(wave) / rate, levels[0] - levels.max(), levels[-1] - levels.max()))
    return {speaker: dict(zip(("length_s", "first_10ms_db", "last_10ms_db"),
                              (round(float(v), 2) for v in np.median(np.array(r), axis=0))))
            for speaker, r in rows.items()}


def heard_digit(text: str) -> str | None:
    """The digit a transcript names ("Six.", " 6", "Oh"), or None when it names none or several."""
    found = {WORDS.get(token, token) for token in re.findall(r"[a-z]+|\d", text.lower())} & set(WORDS.values())
    return found.pop() if len(found) == 1 else None


def score(clips: list[Path], texts: list[str]) -> dict[str, Any]:
    """Per speaker: share of clips whose transcript names their digit, that share per digit, and per digit
    its most common transcripts."""
    hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    heard: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for clip, text in zip(clips, texts):
        digit, speaker, _ = clip.stem.split("_")
        hits[speaker][digit].append(heard_digit(text) == digit)
        heard[speaker][digit][text.strip() or "(nothing)"] += 1
    results = {}
    for speaker, digits in hits.items():
        per_digit = {d: round(sum(h) / len(h), 3) for d, h in sorted(digits.items())}
        results[speaker] = {"recognized": round(sum(map(sum, digits.values())) / sum(map(len, digits.values())), 3),
                            "per_digit": per_digit, "worst_digit": min(per_digit, key=per_digit.__getitem__),
                            "heard_as": {d: dict(heard[speaker][d].most_common(3)) for d in sorted(digits)}}
    return results


def show(results: dict[str, Any]) -> None:
    print(f"zero-shot transcription, {results['model']}, {results['clips']} FSDD clips, {results['wall_s']} s")
    for lead, speakers in results["lead_silence"].items():
        print(f"\nwith {lead} of silence before each clip: share of clips heard as their digit")
        digits = sorted(next(iter(speakers.values()))["per_digit"])
        print_table(["speaker", "recognized", *digits],
                    [[name, s["recognized"], *(s["per_digit"][d] for d in digits)] for name, s in speakers.items()])
        for name, s in speakers.items():
            print(f"{name}: digit {s['worst_digit']} heard as {s['heard_as'][s['worst_digit']]}")
    print("\nhow tightly each speaker's clips are cut (medians)")
    print_table(["speaker", "length s", "first 10 ms dB", "last 10 ms dB"],
                [[name, *cut.values()] for name, cut in results["cut"].items()])


if __name__ == "__main__":
    main()
