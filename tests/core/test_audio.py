"""The audio splitter: decode once, silences, cut plan, streaming, sample-exact chunk WAVs."""

from __future__ import annotations

import itertools
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from infinitetalk_gui.core import audio
from infinitetalk_gui.core.audio import (
    MIN_CHUNK_MS,
    SplitParams,
    analyse_audio,
    ensure_pcm,
    pcm_is_complete,
    plan_cuts,
    stream_chunks,
    validate_audio,
    waveform_envelope,
    write_chunk_wav,
)
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import Cancelled, InputError
from tests import mediagen

GRID = 40


def wav_frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        return wav.readframes(wav.getnframes())


def flat_energy(duration_ms: int, level_db: float = -20.0) -> np.ndarray:
    return np.full(-(-duration_ms // 10), level_db, dtype=np.float32)


def check_plan(plan: list[tuple[int, int]], duration_ms: int, params: SplitParams) -> None:
    """The rules every plan keeps: contiguous, exact cover, grid, max and min lengths."""
    assert plan[0][0] == 0
    assert plan[-1][1] == duration_ms
    for (_, end), (start, _) in itertools.pairwise(plan):
        assert end == start, "chunks must be contiguous"
    for start, end in plan:
        assert start % GRID == 0
        assert end - start <= params.max_chunk_ms
        if len(plan) > 1 or duration_ms > MIN_CHUNK_MS:
            assert end - start > MIN_CHUNK_MS
    for _, end in plan[:-1]:
        assert end % GRID == 0
    if duration_ms <= params.single_chunk_ms:
        assert plan == [(0, duration_ms)]


# --- cut planning on real decoded audio ------------------------------------------------------


def test_cuts_land_at_the_midpoint_of_the_silence_nearest_the_target(tmp_path: Path) -> None:
    segments = [
        ("voice", 37.6),
        ("silence", 0.8),  # 37.6-38.4, midpoint 38.0: 7 s from the 45 s target
        ("voice", 8.2),
        ("silence", 0.8),  # 46.6-47.4, midpoint 47.0: 2 s from the target -> cut
        ("voice", 42.6),
        ("silence", 0.8),  # 90.0-90.8, midpoint 90.4: 1.6 s from 47 + 45 -> cut
        ("voice", 4.4),
        ("silence", 0.8),  # 95.2-96.0, midpoint 95.6: farther
        ("voice", 34.0),  # ends at 130.0 s: 39.6 s left after the second cut, one chunk
    ]
    src = mediagen.speechlike_wav(tmp_path / "speech.wav", segments)
    analysis = analyse_audio(src, tmp_path / "work")
    assert analysis.duration_ms == 130000
    assert analysis.silences == [(37600, 38400), (46600, 47400), (90000, 90800), (95200, 96000)]
    plan = plan_cuts(analysis.duration_ms, analysis.silences, analysis.energy_db)
    assert plan == [(0, 47000), (47000, 90400), (90400, 130000)]
    check_plan(plan, analysis.duration_ms, SplitParams())


def test_silence_thresholds_are_settable(tmp_path: Path) -> None:
    segments = [("voice", 3.0), ("silence", 0.4), ("voice", 3.0), ("silence", 1.2), ("voice", 2.0)]
    src = mediagen.speechlike_wav(tmp_path / "speech.wav", segments)
    default = analyse_audio(src, tmp_path / "a")
    assert default.silences == [(6400, 7600)]  # the 0.4 s pause is too short to count
    short = analyse_audio(src, tmp_path / "b", SplitParams(min_silence_ms=300))
    assert short.silences == [(3000, 3400), (6400, 7600)]
    # -75 dBFS is below the ~-70 dBFS of the pauses: no silence at all.
    strict = analyse_audio(src, tmp_path / "c", SplitParams(silence_db=-75))
    assert strict.silences == []


def test_without_silence_the_cut_is_in_the_quietest_100_ms(tmp_path: Path) -> None:
    # Continuous voice (never below -40 dBFS) with one 200 ms dip too short to be a silence.
    segments = [("voice", 41.0), ("silence", 0.2), ("voice", 40.0)]
    src = mediagen.speechlike_wav(tmp_path / "speech.wav", segments)
    analysis = analyse_audio(src, tmp_path / "work")
    assert analysis.silences == []
    plan = plan_cuts(analysis.duration_ms, analysis.silences, analysis.energy_db)
    assert len(plan) == 2
    # Every 100 ms window centred on 41.08 s or 41.12 s lies wholly inside the dip.
    assert plan[0][1] in (41080, 41120)
    check_plan(plan, analysis.duration_ms, SplitParams())


# --- cut planning, pure ----------------------------------------------------------------------


def test_quietest_100_ms_on_synthetic_energy() -> None:
    duration = 100_000
    energy = flat_energy(duration)
    energy[5200:5210] = -38.0  # 52.00-52.10 s: quieter than the rest, not a silence
    plan = plan_cuts(duration, [], energy)
    assert plan == [(0, 52040), (52040, duration)]  # centred on grid: 52.04 +/- 50 ms inside
    # Two equally quiet spots: the one nearest the target wins.
    energy[4300:4310] = -38.0
    assert plan_cuts(duration, [], energy)[0][1] == 43040


def test_long_silence_across_the_window_is_cut_inside_it() -> None:
    duration = 120_000
    silences = [(20_000, 80_000)]  # covers the whole window [30 s, 60 s]
    plan = plan_cuts(duration, silences, flat_energy(duration))
    assert plan[0] == (0, 45_000)  # the middle of the part inside the window
    check_plan(plan, duration, SplitParams())


def test_silence_outside_the_window_is_ignored() -> None:
    duration = 120_000
    silences = [(10_000, 11_000), (70_000, 71_000)]
    energy = flat_energy(duration)
    energy[3600:3610] = -30.0
    plan = plan_cuts(duration, silences, energy)
    assert plan[0][1] == 36_040  # the quietest 100 ms, as no silence lies in [30 s, 60 s]


def test_the_1_3x_rule_and_the_max_rule() -> None:
    params = SplitParams()
    assert params.single_chunk_ms == 58_500
    assert plan_cuts(58_500, [], flat_energy(58_500)) == [(0, 58_500)]
    assert len(plan_cuts(58_540, [], flat_energy(58_540))) == 2
    # For a 60 s target 1.3x would be 78 s, over the 75 s maximum: the maximum wins.
    long_target = SplitParams(chunk_seconds=60)
    assert long_target.single_chunk_ms == long_target.max_chunk_ms == 75_000
    assert len(plan_cuts(75_000, [], flat_energy(75_000), long_target)) == 1
    assert len(plan_cuts(75_040, [], flat_energy(75_040), long_target)) == 2


def test_small_targets_scale_the_window() -> None:
    params = SplitParams(chunk_seconds=12)
    assert params.window_ms == 4000
    duration = 200_000
    plan = plan_cuts(duration, [], flat_energy(duration), params)
    check_plan(plan, duration, params)
    assert all(8_000 <= end - start <= 16_000 for start, end in plan[:-1])


def test_short_tail_is_never_left_alone() -> None:
    # 60.5 s: more than 1.3x, so two chunks, and the tail must stay longer than 3.5 s.
    for duration in (58_540, 60_000, 60_500, 62_000, 63_600):
        plan = plan_cuts(duration, [], flat_energy(duration))
        check_plan(plan, duration, SplitParams())
    # A silence right before the end is not used if it would leave a tail of 3.5 s or less.
    plan = plan_cuts(60_000, [(56_400, 57_600)], flat_energy(60_000))
    assert plan[-1][1] - plan[-1][0] > MIN_CHUNK_MS


def test_random_plans_keep_every_rule() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        params = SplitParams(
            chunk_seconds=float(rng.choice([10, 12.5, 20, 30, 45, 60, 90, 120])),
            min_silence_ms=int(rng.choice([200, 500, 1000])),
        )
        duration = int(rng.choice([rng.integers(1, 4000), rng.integers(4000, 2_000_000)]))
        silences: list[tuple[int, int]] = []
        position = int(rng.integers(0, 20_000))
        while position < duration:
            length = int(rng.integers(params.min_silence_ms, 4000))
            silences.append((position, min(position + length, duration)))
            position += length + int(rng.integers(1_000, 90_000))
        energy = rng.uniform(-60, -10, -(-duration // 10)).astype(np.float32)
        plan = plan_cuts(duration, silences, energy, params)
        check_plan(plan, duration, params)
        for start, cut in plan[:-1]:
            lo = max(start + params.target_ms - params.window_ms, start + MIN_CHUNK_MS + 1)
            hi = min(start + params.max_chunk_ms, duration - MIN_CHUNK_MS - 1)
            near = [(s, e) for s, e in silences if e >= lo and s <= hi]
            if not any(s <= cut <= e for s, e in near):
                # A cut outside every silence: no silence had a grid point in the window.
                for s, e in near:
                    left, right = max(s, lo), min(e, hi)
                    assert -(-left // GRID) * GRID > right // GRID * GRID


def test_two_second_audio_is_one_padded_chunk(tmp_path: Path) -> None:
    src = mediagen.speechlike_wav(tmp_path / "short.wav", [("voice", 2.0)])
    analysis = analyse_audio(src, tmp_path / "work")
    plan = plan_cuts(analysis.duration_ms, analysis.silences, analysis.energy_db)
    assert plan == [(0, 2000)]
    wav = write_chunk_wav(analysis.pcm_path, 0, 2000, tmp_path / "chunk.wav")
    frames = wav_frames(wav)
    assert len(frames) == 2 * 56_000  # padded to 3.5 s
    assert frames[: 2 * 32_000] == analysis.pcm_path.read_bytes()
    assert frames[2 * 32_000 :] == bytes(2 * 24_000)
    unpadded = write_chunk_wav(analysis.pcm_path, 0, 2000, tmp_path / "raw.wav", min_ms=0)
    assert len(wav_frames(unpadded)) == 2 * 32_000


def test_split_params_are_checked() -> None:
    for bad in (
        {"chunk_seconds": 5.0},
        {"chunk_seconds": 500.0},
        {"silence_db": 3.0},
        {"min_silence_ms": 0},
    ):
        with pytest.raises(InputError):
            SplitParams(**bad)


# --- streaming -------------------------------------------------------------------------------


def random_speech(seconds: float, seed: int, pause_every: tuple[float, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    segments: list[tuple[str, float]] = []
    total = 0.0
    while total < seconds:
        voice = float(rng.uniform(*pause_every))
        pause = float(rng.uniform(0.1, 1.6))
        segments += [("voice", voice), ("silence", pause)]
        total += voice + pause
    return mediagen.speechlike_pcm(segments, seed=seed)[: round(seconds * 16000) + 7]


@pytest.mark.parametrize(
    ("seconds", "pause_every", "params"),
    [
        (300.0, (2.0, 9.0), SplitParams(chunk_seconds=20)),
        (300.0, (2.0, 9.0), SplitParams(chunk_seconds=10, min_silence_ms=300)),
        (240.0, (5.0, 30.0), SplitParams(chunk_seconds=25, min_silence_ms=1200)),
        (240.0, (2.0, 9.0), SplitParams(chunk_seconds=12, min_silence_ms=5000)),  # quietest path
        (200.0, (2.0, 9.0), SplitParams()),
    ],
)
def test_streamed_plan_equals_batch_plan(
    tmp_path: Path, seconds: float, pause_every: tuple[float, float], params: SplitParams
) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(seconds, 5, pause_every))
    stream = stream_chunks(src, tmp_path / "stream", params)
    streamed = []
    decoded_at_yield = []
    for chunk in stream:
        streamed.append(chunk)
        decoded_at_yield.append(stream.decoded_ms)
        # The chunk's audio is already on disk while decoding goes on.
        frames = wav_frames(write_chunk_wav(stream.pcm_path, *chunk, tmp_path / "c.wav"))
        assert len(frames) >= 2 * 16 * min(chunk[1] - chunk[0], MIN_CHUNK_MS)
    batch = analyse_audio(src, tmp_path / "batch", params)
    assert stream.analysis.silences == batch.silences
    np.testing.assert_array_equal(stream.analysis.energy_db, batch.energy_db)
    assert streamed == plan_cuts(batch.duration_ms, batch.silences, batch.energy_db, params)
    check_plan(streamed, batch.duration_ms, params)
    assert len(streamed) > 3
    # The first chunk came out long before the end of the decode.
    assert decoded_at_yield[0] < batch.duration_ms / 2


def test_block_boundaries_do_not_change_the_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(60.0, 9, (1.0, 6.0)))
    params = SplitParams(chunk_seconds=10, min_silence_ms=200)
    reference = analyse_audio(src, tmp_path / "big", params)
    monkeypatch.setattr(audio, "_BLOCK_BYTES", 4001)  # odd: splits samples and 10 ms frames
    small = analyse_audio(src, tmp_path / "small", params)
    assert small.silences == reference.silences
    np.testing.assert_array_equal(small.energy_db, reference.energy_db)
    np.testing.assert_array_equal(small.peak, reference.peak)
    assert small.pcm_path.read_bytes() == reference.pcm_path.read_bytes()
    assert list(stream_chunks(src, tmp_path / "s", params)) == plan_cuts(
        reference.duration_ms, reference.silences, reference.energy_db, params
    )


# --- chunk WAVs ------------------------------------------------------------------------------


def test_chunks_are_sample_exact(tmp_path: Path) -> None:
    samples = random_speech(130.0, 3, (2.0, 8.0))  # 130 s + 7 samples: not a whole ms
    src = mediagen.write_wav(tmp_path / "speech.wav", samples)
    params = SplitParams(chunk_seconds=20)
    stream = stream_chunks(src, tmp_path / "work", params)
    plan = list(stream)
    pcm = stream.analysis.pcm_path.read_bytes()
    # A 16 kHz mono s16 source goes through ffmpeg untouched.
    assert pcm == (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    assert stream.analysis.samples == len(samples) == 130 * 16000 + 7
    assert stream.analysis.duration_ms == 130_001  # rounded up: the last chunk holds every sample
    joined = b"".join(
        wav_frames(write_chunk_wav(stream.pcm_path, s, e, tmp_path / f"{i}.wav", min_ms=0))
        for i, (s, e) in enumerate(plan)
    )
    assert joined == pcm


def test_chunk_range_outside_the_pcm_is_refused(tmp_path: Path) -> None:
    src = mediagen.speechlike_wav(tmp_path / "s.wav", [("voice", 5.0)])
    analysis = analyse_audio(src, tmp_path / "work")
    with pytest.raises(InputError, match=r"ends at 5\.00 s"):
        write_chunk_wav(analysis.pcm_path, 4000, 6000, tmp_path / "c.wav")
    with pytest.raises(ValueError):
        write_chunk_wav(analysis.pcm_path, 3000, 3000, tmp_path / "c.wav")
    assert not (tmp_path / "c.wav").exists()
    assert not (tmp_path / "c.wav.part").exists()


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("voice.mp3", ()),
        ("voice.m4a", ("-c:a", "aac")),
        ("voice.ogg", ()),
        ("voice.flac", ()),
        ("voice.wav", ("-ar", "44100", "-ac", "2")),
        (
            "clip.mp4",
            (
                *("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=4"),
                *("-map", "1:v", "-map", "0:a", "-c:v", "libx264", "-c:a", "aac", "-shortest"),
            ),
        ),
    ],
)
def test_every_format_decodes(tmp_path: Path, name: str, args: tuple[str, ...]) -> None:
    segments = [("voice", 1.5), ("silence", 1.0), ("voice", 1.5)]
    src = mediagen.speechlike_wav(tmp_path / "voice-src.wav", segments)
    converted = mediagen.convert(src, tmp_path / name, *args)
    info = validate_audio(converted)
    assert info.codec is not None
    assert info.duration_ms is not None and abs(info.duration_ms - 4000) <= 100
    analysis = analyse_audio(converted, tmp_path / "work")
    assert abs(analysis.duration_ms - 4000) <= 100  # encoder padding, a frame or two
    assert len(analysis.silences) == 1
    start, end = analysis.silences[0]
    assert abs(start - 1500) <= 100 and abs(end - 2500) <= 100


# --- cancellation ----------------------------------------------------------------------------


def test_cancel_before_start(tmp_path: Path) -> None:
    src = mediagen.speechlike_wav(tmp_path / "s.wav", [("voice", 5.0)])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyse_audio(src, tmp_path / "work", cancel=token)
    assert not pcm_is_complete(tmp_path / "work")


def test_cancel_between_chunks_stops_the_decode(tmp_path: Path) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(240.0, 4, (2.0, 9.0)))
    token = CancelToken()
    stream = stream_chunks(src, tmp_path / "work", SplitParams(chunk_seconds=10), cancel=token)
    chunks = iter(stream)
    next(chunks)
    started = time.monotonic()
    token.cancel()  # from a GUI thread this must not block, even with ffmpeg's pipe full
    with pytest.raises(Cancelled):
        next(chunks)
    assert time.monotonic() - started < 1.0
    assert stream.decoded_ms < 120_000
    assert not pcm_is_complete(tmp_path / "work")


def test_abandoned_stream_stops_ffmpeg(tmp_path: Path) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(240.0, 4, (2.0, 9.0)))
    stream = stream_chunks(src, tmp_path / "work", SplitParams(chunk_seconds=10))
    chunks = iter(stream)
    next(chunks)
    started = time.monotonic()
    chunks.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 1.0
    assert not pcm_is_complete(tmp_path / "work")
    with pytest.raises(RuntimeError):
        _ = stream.analysis


def test_cancel_from_another_thread_stops_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(120.0, 6, (2.0, 9.0)))
    feed = audio._Decoder.feed

    def slow_feed(self: audio._Decoder, data: bytes) -> None:
        time.sleep(0.02)  # makes the 2-minute decode last a few seconds
        feed(self, data)

    monkeypatch.setattr(audio._Decoder, "feed", slow_feed)
    monkeypatch.setattr(audio, "_BLOCK_BYTES", 8192)
    token = CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled):
            analyse_audio(src, tmp_path / "work", cancel=token)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 2.0
    assert not pcm_is_complete(tmp_path / "work")


# --- resume ----------------------------------------------------------------------------------


def test_resume_rewrites_chunks_from_stored_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = mediagen.write_wav(tmp_path / "speech.wav", random_speech(70.0, 8, (2.0, 9.0)))
    work = tmp_path / "work"
    stream = stream_chunks(src, work)
    plan = list(stream)
    first = write_chunk_wav(stream.pcm_path, *plan[0], work / "chunk-0.wav").read_bytes()
    original_pcm = stream.pcm_path.read_bytes()

    # The PCM is still there: reused as is, nothing decoded.
    def no_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(audio, "_decode_all", no_decode)
        assert ensure_pcm(src, work) == stream.pcm_path
    # The PCM is gone: decoded again, the same bytes, the same chunk.
    stream.pcm_path.unlink()
    assert not pcm_is_complete(work)
    pcm = ensure_pcm(src, work, expected_ms=stream.analysis.duration_ms)
    assert pcm.read_bytes() == original_pcm
    assert write_chunk_wav(pcm, *plan[0], work / "again.wav").read_bytes() == first
    # A half-written PCM (a crash mid-decode) is not trusted.
    with pcm.open("r+b") as handle:
        handle.truncate(1000)
    assert not pcm_is_complete(work)
    assert ensure_pcm(src, work).read_bytes() == original_pcm


def test_resume_notices_a_changed_or_missing_source(tmp_path: Path) -> None:
    src = mediagen.speechlike_wav(tmp_path / "voice.wav", [("voice", 6.0)])
    work = tmp_path / "work"
    analysis = analyse_audio(src, work)
    analysis.pcm_path.unlink()
    mediagen.speechlike_wav(src, [("voice", 8.0)])
    with pytest.raises(InputError, match=r"voice\.wav' has changed.* 6\.00 s .* 8\.00 s"):
        ensure_pcm(src, work, expected_ms=analysis.duration_ms)
    assert not analysis.pcm_path.exists()
    # Without expected_ms, the sample count the first decode recorded is the reference.
    analyse_audio(src, work)  # 8 s now
    analysis.pcm_path.unlink()
    mediagen.speechlike_wav(src, [("voice", 7.0)])
    with pytest.raises(InputError, match="has changed"):
        ensure_pcm(src, work)
    src.unlink()
    with pytest.raises(InputError, match=r"voice\.wav' does not exist"):
        ensure_pcm(src, work)


# --- waveform --------------------------------------------------------------------------------


def test_waveform_envelope(tmp_path: Path) -> None:
    segments = [("voice", 2.0), ("silence", 2.0), ("voice", 2.0)]
    src = mediagen.speechlike_wav(tmp_path / "s.wav", segments)
    analysis = analyse_audio(src, tmp_path / "work")
    envelope = waveform_envelope(analysis, 60)
    assert envelope.shape == (60,) and envelope.dtype == np.float32
    assert envelope.max() <= 1.0 and envelope.min() >= 0.0
    assert envelope[:19].min() > 0.1  # voice
    assert envelope[21:39].max() < 0.01  # the pause
    assert envelope[41:].min() > 0.1
    wide = waveform_envelope(analysis, 2000)  # more points than 10 ms frames: repeated
    assert wide.shape == (2000,) and wide.max() == pytest.approx(envelope.max())
    with pytest.raises(ValueError):
        waveform_envelope(analysis, 0)
