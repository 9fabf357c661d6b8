"""Videos named on a command line: files, folders searched recursively (any container in
:data:`VIDEO_EXTENSIONS`), or list files (:data:`LIST_EXTENSIONS`: one video path per line, relative to
the list's folder unless absolute; blank lines and ``#`` comments skipped), each with the sub-folder its
outputs mirror.

    for item in list_videos(["clip.mp4", "my_videos/", "todo.txt"]):
        item.video, item.subdir, item.name     # my_videos/dog/a.mkv, Path("dog"), "dog__a"
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# Inputs: regular files of these containers only (no playlists, devices, URLs or other protocols; see
# ``feature_extraction.media.checked_input``); also the extensions searched for in folders.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts",
                    ".mts", ".m2ts", ".3gp", ".ogv", ".gif")
LIST_EXTENSIONS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class VideoItem:
    """One input video. ``subdir``: its folder relative to the folder argument it was found under (empty for
    a file argument), mirrored under the output folder. ``name``: a flat unique name (``<subdir parts>__<stem>``)
    for flat output folders such as av-benchmark's."""

    video: Path
    subdir: Path

    @property
    def name(self) -> str:
        return "__".join([*self.subdir.parts, self.video.stem])


def find_videos(root: str | Path) -> list[Path]:
    """All video files under ``root`` (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def list_rows(path: str | Path) -> list[tuple[int, str]]:
    """(line number, stripped row) of a text list, blank lines and ``#`` comments skipped. ValueError for a
    file that is not UTF-8 text."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text list of videos (one path per line)") from None
    rows = [(n, line.strip()) for n, line in enumerate(lines, 1)]
    return [(n, row) for n, row in rows if row and not row.startswith("#")]


def read_list(path: Path) -> list[Path]:
    """The videos of a list file (see the module doc). Raises FileNotFoundError naming the list and line of a
    missing video, ValueError for a list that is not text or names no video."""
    videos = []
    for n, line in list_rows(path):
        video = Path(line) if Path(line).is_absolute() else path.parent / line
        if not video.is_file():
            raise FileNotFoundError(f"{path}, line {n}: video not found: {video}")
        videos.append(video)
    if not videos:
        raise ValueError(f"{path}: the list names no video")
    return videos


def list_videos(inputs: Iterable[str | Path]) -> list[VideoItem]:
    """Files as given, folders expanded recursively (sorted), list files (:func:`read_list`) expanded in their
    order. Raises FileNotFoundError naming a missing path, a folder without videos or a listed video that is
    missing, ValueError naming two inputs whose outputs would collide."""
    items: list[VideoItem] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = find_videos(path)
            if not found:
                raise FileNotFoundError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under {path}")
            items += [VideoItem(v, v.parent.relative_to(path)) for v in found]
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            items += [VideoItem(v, Path()) for v in read_list(path)]
        elif path.is_file():
            items.append(VideoItem(path, Path()))
        else:
            raise FileNotFoundError(f"video not found: {path}")
    seen: dict[str, Path] = {}
    for item in items:
        key = item.name
        if key in seen and seen[key].resolve() != item.video.resolve():
            raise ValueError(f"videos {seen[key]} and {item.video} have the same name {key!r}: their outputs "
                             f"would overwrite each other; rename one or run them with different --out")
        seen[key] = item.video
    unique = {item.video.resolve(): item for item in items}  # a file named twice is done once
    return list(unique.values())
