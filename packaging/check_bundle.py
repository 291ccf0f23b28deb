"""Check a built bundle the way a user's machine would run it: offline, no ffmpeg on PATH.

    python packaging/check_bundle.py --exe EXE --bundle DIR --work DIR [--report FILE]
                                     [--expect-version V] [--skip-render]

EXE is the executable to run (on Windows the console twin ``infinitetalk-gui-cli.exe``;
on macOS ``.../Contents/MacOS/infinitetalk-gui``); DIR is the folder (or ``.app``) that must
hold everything it needs. The checks:

1. layout: keyring's package metadata (its backends' entry points), the QtMultimedia ffmpeg
   plugin, the bundled ffmpeg and the demo media are inside DIR;
2. ``EXE --smoke`` (offscreen) exits 0 and prints ``"ok": true``, ``"multimedia": true`` and
   an ``ffmpeg`` path inside DIR;
3. ``EXE render --demo PORTRAIT VOICE -o OUT.mp4`` (the bundle's own demo media) makes an
   MP4 whose duration matches the voice clip's, both read with the bundled ffmpeg;
4. ``EXE --screenshot SHOT.png --with-demo-job``: the window renders the demo the way a
   user's does (its demo endpoint a process of its own, which a frozen app starts by
   running itself again) and writes a PNG of the finished job.

Each run gets a scrubbed environment: PATH holds only system folders with no ffmpeg (a
check fails rather than pass by luck if one has it), HOME and the config/data folders point
into WORK, QT_QPA_PLATFORM=offscreen. Standard library only: it runs with any Python.
Exit 0 when every check passes; otherwise 1 with the reasons on stderr. The report (JSON)
is written either way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SMOKE_TIMEOUT_S = 180
RENDER_TIMEOUT_S = 900
# The output is the joined chunk videos with the original audio muxed back in: a frame
# (40 ms at 25 fps) plus AAC priming keeps it within a few hundredths of the WAV.
DURATION_TOLERANCE_S = 0.25
_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")


class CheckFailed(Exception):
    pass


def clean_env(work: Path) -> dict[str, str]:
    """An environment like a fresh user account's, with no ffmpeg reachable on PATH."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {"QT_QPA_PLATFORM": "offscreen", "HOME": str(home)}
    if sys.platform == "win32":
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        env.update(
            {
                "SYSTEMROOT": system_root,
                "WINDIR": system_root,
                "PATH": os.pathsep.join([str(Path(system_root) / "System32"), system_root]),
                "USERPROFILE": str(home),
                "APPDATA": str(home / "AppData" / "Roaming"),
                "LOCALAPPDATA": str(home / "AppData" / "Local"),
                "TEMP": str(work / "tmp"),
                "TMP": str(work / "tmp"),
            }
        )
        (work / "tmp").mkdir(exist_ok=True)
    elif sys.platform == "darwin":
        env.update({"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "en_US.UTF-8"})
    else:
        empty_bin = work / "empty-bin"  # nothing at all on PATH: the app must need nothing
        empty_bin.mkdir(exist_ok=True)
        env.update(
            {
                "PATH": str(empty_bin),
                "LANG": "C.UTF-8",
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_STATE_HOME": str(home / ".local" / "state"),
                "XDG_RUNTIME_DIR": str(work / "runtime"),
            }
        )
        (work / "runtime").mkdir(mode=0o700, exist_ok=True)
    found = shutil.which("ffmpeg", path=env["PATH"])
    if found:
        raise CheckFailed(
            f"ffmpeg is on the scrubbed PATH ({found}): the check could not prove that the "
            "bundle brings its own. Run it on a machine without a system ffmpeg there."
        )
    return env


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def first(folder: Path, pattern: str, what: str) -> Path:
    for candidate in sorted(folder.rglob(pattern)):
        if candidate.is_file():
            return candidate
    raise CheckFailed(f"{folder}: no {what} ({pattern}) in the bundle.")


def check_layout(bundle: Path) -> dict[str, Any]:
    entry_points = [
        p
        for p in bundle.rglob("entry_points.txt")
        if p.parent.name.lower().startswith("keyring-") and p.parent.name.endswith(".dist-info")
    ]
    if not entry_points:
        raise CheckFailed(
            f"{bundle}: keyring's package metadata is missing; the frozen keyring would find "
            "no backend (build.spec must copy_metadata('keyring'))."
        )
    text = entry_points[0].read_text(encoding="utf-8")
    if "keyring.backends" not in text:
        raise CheckFailed(f"{entry_points[0]}: lists no keyring backends.")
    plugin = first(bundle, "*ffmpegmediaplugin*", "QtMultimedia ffmpeg backend plugin")
    ffmpeg = first(bundle, "ffmpeg-*", "bundled imageio-ffmpeg binary")
    portrait = first(bundle, "demo_portrait.png", "demo portrait")
    voice = first(bundle, "demo_voice.wav", "demo voice clip")
    return {
        "keyring_metadata": str(entry_points[0].parent),
        "multimedia_plugin": str(plugin),
        "ffmpeg": str(ffmpeg),
        "demo_portrait": str(portrait),
        "demo_voice": str(voice),
    }


def run(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise CheckFailed(f"{' '.join(cmd)}: still running after {timeout:.0f} s.") from error
    except OSError as error:
        raise CheckFailed(f"{cmd[0]}: cannot be started ({error}).") from error


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def parse_smoke(stdout: str) -> dict[str, Any]:
    text = stdout.strip()
    candidates = [text] + [ln for ln in reversed(text.splitlines()) if ln.startswith("{")]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise CheckFailed(f"--smoke printed no JSON object:\n{tail(stdout)}")


def check_smoke(
    exe: Path, bundle: Path, env: dict[str, str], work: Path, version: str | None
) -> dict[str, Any]:
    started = time.monotonic()
    proc = run([str(exe), "--smoke"], env, work, SMOKE_TIMEOUT_S)
    seconds = round(time.monotonic() - started, 2)
    if proc.returncode != 0:
        raise CheckFailed(
            f"{exe} --smoke exited {proc.returncode}:\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
        )
    smoke = parse_smoke(proc.stdout)
    problems = []
    if smoke.get("ok") is not True:
        problems.append('"ok" is not true')
    if smoke.get("multimedia") is not True:
        problems.append('"multimedia" is not true (QtMultimedia did not load)')
    ffmpeg = smoke.get("ffmpeg")
    if not isinstance(ffmpeg, str) or not Path(ffmpeg).is_absolute():
        problems.append(f'"ffmpeg" is not an absolute path: {ffmpeg!r}')
    elif not inside(Path(ffmpeg), bundle):
        problems.append(f"ffmpeg in use is not the bundled one: {ffmpeg}")
    if version is not None and smoke.get("version") != version:
        problems.append(f'"version" is {smoke.get("version")!r}, expected {version!r}')
    if problems:
        raise CheckFailed(f"{exe} --smoke: " + "; ".join(problems) + f"\n{json.dumps(smoke)}")
    return {"seconds": seconds, "output": smoke}


def media_duration(ffmpeg: Path, media: Path, env: dict[str, str], work: Path) -> tuple[float, str]:
    proc = run([str(ffmpeg), "-hide_banner", "-nostdin", "-i", str(media)], env, work, 60)
    match = _DURATION.search(proc.stderr)
    if not match:
        raise CheckFailed(f"{media}: ffmpeg reports no duration:\n{tail(proc.stderr, 5)}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds), proc.stderr


def check_render(
    exe: Path, layout: dict[str, Any], ffmpeg: Path, env: dict[str, str], work: Path
) -> dict[str, Any]:
    output = work / "demo-render.mp4"
    output.unlink(missing_ok=True)
    portrait, voice = layout["demo_portrait"], layout["demo_voice"]
    cmd = [str(exe), "render", "--demo", portrait, voice, "-o", str(output)]
    started = time.monotonic()
    proc = run(cmd, env, work, RENDER_TIMEOUT_S)
    seconds = round(time.monotonic() - started, 2)
    if proc.returncode != 0:
        raise CheckFailed(f"render --demo exited {proc.returncode}:\n{tail(proc.stderr)}")
    if not output.is_file() or output.stat().st_size == 0:
        raise CheckFailed(f"{output}: render --demo exited 0 but wrote no video.")
    audio_s, _ = media_duration(ffmpeg, Path(voice), env, work)
    video_s, info = media_duration(ffmpeg, output, env, work)
    if "Video:" not in info or "Audio:" not in info:
        raise CheckFailed(f"{output}: expected a video and an audio stream:\n{tail(info, 8)}")
    if abs(video_s - audio_s) > DURATION_TOLERANCE_S:
        raise CheckFailed(
            f"{output}: lasts {video_s:.2f} s but the voice clip lasts {audio_s:.2f} s "
            f"(tolerance {DURATION_TOLERANCE_S} s)."
        )
    return {
        "seconds": seconds,
        "output": str(output),
        "bytes": output.stat().st_size,
        "audio_duration_s": audio_s,
        "video_duration_s": video_s,
    }


def check_window_demo(exe: Path, env: dict[str, str], work: Path) -> dict[str, Any]:
    shot = work / "window-demo.png"
    shot.unlink(missing_ok=True)
    started = time.monotonic()
    cmd = [str(exe), "--screenshot", str(shot), "--with-demo-job"]
    proc = run(cmd, env, work, RENDER_TIMEOUT_S)
    seconds = round(time.monotonic() - started, 2)
    if proc.returncode != 0:
        raise CheckFailed(
            f"--screenshot --with-demo-job exited {proc.returncode}:\n{tail(proc.stderr)}"
        )
    if not shot.is_file() or not shot.read_bytes().startswith(b"\x89PNG"):
        raise CheckFailed(f"{shot}: the window's demo render wrote no PNG.")
    return {"seconds": seconds, "screenshot": str(shot), "bytes": shot.stat().st_size}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exe", type=Path, required=True, help="executable to run")
    parser.add_argument("--bundle", type=Path, required=True, help="folder or .app it lives in")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the runs")
    parser.add_argument("--report", type=Path, help="write the results here as JSON")
    parser.add_argument("--expect-version", help="the version --smoke must report")
    parser.add_argument("--skip-render", action="store_true", help="layout and --smoke only")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "ok": False,
        "exe": str(args.exe),
        "bundle": str(args.bundle),
        "platform": sys.platform,
    }
    try:
        if not args.exe.is_file():
            raise CheckFailed(f"{args.exe}: no such executable (did the build run?).")
        report["bundle_bytes"] = folder_bytes(args.bundle)
        layout = check_layout(args.bundle)
        report["layout"] = layout
        env = clean_env(args.work)
        report["env_path"] = env["PATH"]
        report["smoke"] = check_smoke(args.exe, args.bundle, env, args.work, args.expect_version)
        if not args.skip_render:
            ffmpeg = Path(report["smoke"]["output"]["ffmpeg"])
            report["render"] = check_render(args.exe, layout, ffmpeg, env, args.work)
            report["window_demo"] = check_window_demo(args.exe, env, args.work)
        report["ok"] = True
    except CheckFailed as error:
        report["error"] = str(error)
        print(f"check_bundle: FAILED: {error}", file=sys.stderr)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if report["ok"]:
        summary = f"check_bundle: OK: {args.exe} --smoke"
        if "render" in report:
            render = report["render"]
            summary += (
                f", render --demo {render['video_duration_s']:.2f} s video for "
                f"{render['audio_duration_s']:.2f} s audio in {render['seconds']:.0f} s"
            )
        if "window_demo" in report:
            summary += f", window demo render in {report['window_demo']['seconds']:.0f} s"
        print(summary, file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
