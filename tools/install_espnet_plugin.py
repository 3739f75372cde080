#!/usr/bin/env python3
"""Install / uninstall the TF-Locoformer plugin into an ESPnet tree (copy_files_to_espnet.sh).

usage: copy_files_to_espnet.sh [--uninstall] [--dry-run] ESPNET_ROOT

ESPNET_ROOT is an ESPnet source checkout (holds ``espnet2/`` and ``egs2/``) or the directory of
an installed espnet package (the ``site-packages`` folder that holds ``espnet2/``).

Install:
  * copies every file under this repository's ``espnet2/`` (``*.patch`` excluded; the
    ``locoformer`` symlink to ``standalone/`` is copied as a real directory);
  * applies every ``espnet2/**/*.patch`` to the file named in its ``+++ b/...`` header, with an
    exact-context unified-diff applier (no ``patch`` binary needed);
  * for a source checkout, also copies ``egs2/`` (the MUSDB18-HQ recipe, and the speech
    configs into recipes that exist in the checkout), keeping symlinks as symlinks.

Everything is computed and checked before the first write: a tree whose files do not match a
patch's context is refused with a message naming the file. ESPnet files that get replaced or
patched are backed up in ``espnet2/.locoformer_plugin/backup/`` and listed in
``espnet2/.locoformer_plugin/manifest.json``; installing again converges to the same tree
(it re-derives patched files from the backups), and ``--uninstall`` restores every backup
byte-identical and removes what the plugin added.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = "espnet2/.locoformer_plugin"
MANIFEST = f"{STATE_DIR}/manifest.json"
BACKUP_DIR = f"{STATE_DIR}/backup"
MANIFEST_FORMAT = 1
# recipe outputs that are never installed (same list as .gitignore)
GENERATED_DIRS = {"data", "dump", "exp", "downloads", "synthetic_musdb", "separated"}
SKIPPED_SUFFIXES = (".pyc", ".wav", ".flac", ".pth", ".log", ".patch")


class InstallError(Exception):
    """A refusal: the message names the file and the problem."""


def split_lines(text: str) -> list[str]:
    """Split on ``\n`` only, keeping line ends (``str.splitlines`` also splits on \f etc.)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


# --------------------------------------------------------------------------- patches
@dataclass
class Hunk:
    old_start: int  # 1-based line in the original file
    old: list[str] = field(default_factory=list)  # context + removed lines
    new: list[str] = field(default_factory=list)  # context + added lines


@dataclass
class FilePatch:
    patch_file: Path
    target: str  # path relative to the ESPnet root
    hunks: list[Hunk]


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def parse_patch(path: Path) -> list[FilePatch]:
    """Parse a unified diff (text before the first ``---`` line is a free comment)."""
    lines = split_lines(path.read_bytes().decode("utf-8"))
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("--- "):
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise InstallError(f"{path}: line {i + 1}: '---' header without '+++' line")
        target = lines[i + 1][4:].split("\t")[0].strip()
        if target.startswith("b/"):
            target = target[2:]
        i += 2
        hunks: list[Hunk] = []
        while i < len(lines) and lines[i].startswith("@@"):
            m = _HUNK_RE.match(lines[i])
            if not m:
                raise InstallError(f"{path}: line {i + 1}: malformed hunk header")
            old_len = int(m.group(2) or 1)
            new_len = int(m.group(4) or 1)
            hunk = Hunk(old_start=int(m.group(1)))
            i += 1
            while len(hunk.old) < old_len or len(hunk.new) < new_len:
                if i >= len(lines):
                    raise InstallError(f"{path}: hunk at line {hunk.old_start} is truncated")
                tag, text = lines[i][:1], lines[i][1:]
                if tag == " ":
                    hunk.old.append(text)
                    hunk.new.append(text)
                elif tag == "-":
                    hunk.old.append(text)
                elif tag == "+":
                    hunk.new.append(text)
                elif lines[i] in ("\n", "\r\n"):  # blank context line whose space was lost
                    hunk.old.append(lines[i])
                    hunk.new.append(lines[i])
                else:
                    raise InstallError(f"{path}: line {i + 1}: unexpected diff line")
                i += 1
                # "\ No newline at end of file" applies to the line just read
                if i < len(lines) and lines[i].startswith("\\"):
                    if tag in (" ", "-"):
                        hunk.old[-1] = hunk.old[-1].rstrip("\r\n")
                    if tag in (" ", "+"):
                        hunk.new[-1] = hunk.new[-1].rstrip("\r\n")
                    i += 1
            hunks.append(hunk)
        if not hunks:
            raise InstallError(f"{path}: no hunks for {target}")
        patches.append(FilePatch(path, target, hunks))
    if not patches:
        raise InstallError(f"{path}: not a unified diff")
    return patches


def apply_patch(text: str, fp: FilePatch, shown_name: str) -> str:
    """Apply ``fp`` to ``text``; every hunk's context must match exactly (offsets allowed)."""
    lines = split_lines(text)
    out: list[str] = []
    pos = 0  # next unconsumed line of ``lines``
    offset = 0  # drift between the patch's line numbers and this file
    for n, hunk in enumerate(fp.hunks, 1):
        size = len(hunk.old)
        expected = hunk.old_start - 1 + offset if size else hunk.old_start + offset
        if expected >= pos and lines[expected : expected + size] == hunk.old:
            at = expected
        else:
            found = [
                j for j in range(pos, len(lines) - size + 1) if lines[j : j + size] == hunk.old
            ]
            if len(found) != 1:
                problem = "context not found" if not found else f"context found {len(found)}x"
                raise InstallError(
                    f"{shown_name} does not match {fp.patch_file.name} (hunk {n}, "
                    f"original line {hunk.old_start}: {problem}); this ESPnet version is not "
                    "supported by the patch, nothing was changed"
                )
            at = found[0]
        offset = at - (hunk.old_start - 1)
        out.extend(lines[pos:at])
        out.extend(hunk.new)
        pos = at + size
    out.extend(lines[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- plan
@dataclass
class Entry:
    """One path the plugin owns in the target tree."""

    rel: str
    kind: str  # "file" | "symlink"
    origin: str  # "plugin" (copied) | "patch" (patched ESPnet file) | "recipe"
    data: bytes = b""  # file content
    link: str = ""  # symlink target
    mode: int = 0o644

    def digest(self) -> str:
        payload = self.data if self.kind == "file" else self.link.encode()
        return hashlib.sha256(payload).hexdigest()


def sha256_of(path: Path) -> str | None:
    if path.is_symlink():
        return hashlib.sha256(os.readlink(path).encode()).hexdigest()
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return None


def _walk(src: Path, follow_links: bool):
    """Yield files (and, if not following, symlinks) under ``src``, sorted, caches skipped."""
    for root, dirs, files in os.walk(src, followlinks=follow_links):
        rootp = Path(root)
        keep = []
        for d in sorted(dirs):
            if d == "__pycache__" or d.startswith("."):
                continue
            if not follow_links and (rootp / d).is_symlink():
                yield rootp / d
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if f.startswith(".") or f.endswith(SKIPPED_SUFFIXES):
                continue
            yield rootp / f


def plugin_entries() -> list[Entry]:
    """Files copied into ``espnet2/`` (symlinks followed, so ``locoformer`` becomes a dir)."""
    entries = []
    for path in _walk(REPO / "espnet2", follow_links=True):
        rel = path.relative_to(REPO).as_posix()
        entries.append(
            Entry(rel, "file", "plugin", data=path.read_bytes(), mode=_mode(path.stat().st_mode))
        )
    return entries


def _mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def recipe_entries(root: Path, notes: list[str]) -> list[Entry]:
    """``egs2/<corpus>/<task>/`` trees.

    A directory holding only ``conf/`` (speech configs for an existing ESPnet recipe) is
    installed only where that recipe exists; any other directory is a full recipe and is
    created if needed.
    """
    entries = []
    egs = REPO / "egs2"
    if not egs.is_dir():
        return entries
    for recipe in sorted(p for p in egs.glob("*/*") if p.is_dir()):
        rel_recipe = recipe.relative_to(REPO).as_posix()
        full_recipe = any(p.name != "conf" for p in recipe.iterdir())
        if not full_recipe and not (root / rel_recipe).is_dir():
            notes.append(f"skipped {rel_recipe}/ (that recipe is not in this ESPnet checkout)")
            continue
        for path in _walk(recipe, follow_links=False):
            parts = path.relative_to(recipe).parts
            if parts[0] in GENERATED_DIRS:
                continue
            rel = path.relative_to(REPO).as_posix()
            if path.is_symlink():
                entries.append(Entry(rel, "symlink", "recipe", link=os.readlink(path)))
            else:
                entries.append(
                    Entry(
                        rel,
                        "file",
                        "recipe",
                        data=path.read_bytes(),
                        mode=_mode(path.stat().st_mode),
                    )
                )
    return entries


def load_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InstallError(f"{path}: unreadable plugin manifest ({e})") from None
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), dict):
        raise InstallError(f"{path}: unknown plugin manifest format")
    return manifest


def check_unchanged_since_install(root: Path, manifest: dict) -> None:
    """Every owned path must hold what the plugin wrote (or still the original)."""
    for rel, info in sorted(manifest["files"].items()):
        now = sha256_of(root / rel)
        allowed = {info["sha256"]}
        backup = root / BACKUP_DIR / rel
        if info.get("backup"):
            allowed.add(sha256_of(backup))
        else:
            allowed.add(None)  # not written yet by an interrupted install
        if now not in allowed:
            raise InstallError(
                f"{root / rel} was changed after the plugin was installed; restore it (its "
                f"original is in {backup if info.get('backup') else 'nowhere: it was new'}) or "
                f"remove {root / STATE_DIR} if you replaced ESPnet, then run again"
            )


def validate_root(root: Path) -> bool:
    """Return True for a source checkout (egs2/ present), False for an installed package."""
    if not root.is_dir():
        raise InstallError(f"{root}: no such directory")
    if root.name == "espnet2" and not (root / "espnet2").is_dir():
        raise InstallError(f"{root}: pass the directory that holds espnet2/, not espnet2/ itself")
    if not (root / "espnet2" / "tasks" / "enh.py").is_file():
        raise InstallError(
            f"{root}: not an ESPnet tree (espnet2/tasks/enh.py missing); pass an ESPnet source "
            "checkout or the site-packages directory that holds espnet2/"
        )
    return (root / "egs2").is_dir()


@dataclass
class Plan:
    root: Path
    entries: dict[str, Entry]
    old: dict | None
    created_dirs: list[str]
    notes: list[str]


def make_plan(root: Path) -> Plan:
    source_checkout = validate_root(root)
    old = load_manifest(root)
    if old is not None:
        check_unchanged_since_install(root, old)
    notes: list[str] = []
    entries: dict[str, Entry] = {}
    for e in plugin_entries():
        entries[e.rel] = e
    if source_checkout:
        for e in recipe_entries(root, notes):
            entries[e.rel] = e
    else:
        notes.append("installed package (no egs2/): recipe and speech configs not copied")

    for patch_file in sorted((REPO / "espnet2").rglob("*.patch")):
        for fp in parse_patch(patch_file):
            target = root / fp.target
            prior = old["files"].get(fp.target, {}) if old is not None else {}
            was_patched = prior.get("origin") == "patch"
            source = root / BACKUP_DIR / fp.target if was_patched else target
            if not source.is_file():
                raise InstallError(f"{target}: file to patch is missing")
            original = source.read_bytes().decode("utf-8")
            patched = apply_patch(original, fp, str(target))
            entries[fp.target] = Entry(
                fp.target,
                "file",
                "patch",
                data=patched.encode("utf-8"),
                mode=_mode(source.stat().st_mode),
            )

    created = set(old.get("created_dirs", [])) if old else set()
    for rel in entries:
        parent = Path(rel).parent
        while str(parent) not in ("", ".") and not (root / parent).is_dir():
            created.add(parent.as_posix())
            parent = parent.parent
    return Plan(root, entries, old, sorted(created), notes)


# --------------------------------------------------------------------------- file ops
def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        if path.is_symlink() or path.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _remove_bytecode(path: Path) -> None:
    """Drop ``__pycache__/<name>.*.pyc`` of a removed module (so its dir can go too)."""
    cache = path.parent / "__pycache__"
    if path.suffix == ".py" and cache.is_dir():
        for pyc in cache.glob(f"{path.stem}.*.pyc"):
            pyc.unlink()
        if not any(cache.iterdir()):
            cache.rmdir()


def _backup(root: Path, rel: str) -> None:
    src, dst = root / rel, root / BACKUP_DIR / rel
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


def _restore(root: Path, rel: str) -> None:
    src, dst = root / BACKUP_DIR / rel, root / rel
    if src.is_symlink():
        _remove(dst)
        os.symlink(os.readlink(src), dst)
        return
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_owned(root: Path, rel: str, info: dict, log) -> None:
    """Undo one owned path: restore its backup or delete it."""
    path = root / rel
    if info.get("backup"):
        _restore(root, rel)
        log(f"restored  {rel}")
    elif path.exists() or path.is_symlink():
        _remove(path)
        _remove_bytecode(path)
        log(f"removed   {rel}")


def _remove_empty_dirs(root: Path, rels: list[str], log) -> None:
    for rel in sorted(rels, key=lambda r: r.count("/"), reverse=True):
        d = root / rel
        cache = d / "__pycache__"
        if cache.is_dir() and all(p.suffix == ".pyc" for p in cache.iterdir()):
            shutil.rmtree(cache)
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            log(f"removed   {rel}/")


# --------------------------------------------------------------------------- commands
def install(root: Path, dry_run: bool, log) -> None:
    plan = make_plan(root)
    old_files = plan.old["files"] if plan.old else {}
    for note in plan.notes:
        log(f"note: {note}")

    manifest = {
        "format": MANIFEST_FORMAT,
        "plugin": "tf-locoformer",
        "created_dirs": plan.created_dirs,
        "files": {},
    }
    actions = []
    for rel, e in sorted(plan.entries.items()):
        path = root / rel
        prior = old_files.get(rel)
        if prior is not None:
            backup = bool(prior.get("backup"))
        else:
            backup = path.exists() or path.is_symlink()
        manifest["files"][rel] = {
            "kind": e.kind,
            "origin": e.origin,
            "sha256": e.digest(),
            "backup": backup,
        }
        if sha256_of(path) == e.digest() and (e.kind == "file") == (not path.is_symlink()):
            actions.append(("unchanged", rel, e, backup))
        elif e.origin == "patch":
            actions.append(("patched", rel, e, backup))
        elif prior is None and backup:
            actions.append(("replaced", rel, e, backup))
        else:
            actions.append(("updated" if prior is not None else "added", rel, e, backup))
    stale = sorted(set(old_files) - set(plan.entries))

    prefix = "[dry-run] " if dry_run else ""
    for verb, rel, _e, _backup_flag in actions:
        extra = " (ESPnet's file backed up)" if verb == "replaced" else ""
        log(f"{prefix}{verb:<9} {rel}{extra}")
    for rel in stale:
        log(f"{prefix}stale     {rel} (no longer part of the plugin: will be undone)")
    if dry_run:
        log(f"[dry-run] nothing written to {root}")
        return

    # 1. backups of ESPnet files about to change, 2. the manifest, 3. the files
    for _verb, rel, _e, backup in actions:
        if backup and rel not in old_files:
            _backup(root, rel)
    (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
    manifest_text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    union = dict(manifest)
    union["files"] = {**old_files, **manifest["files"]}
    write_atomic(root / MANIFEST, json.dumps(union, indent=1, sort_keys=True).encode(), 0o644)
    for verb, rel, e, _backup_flag in actions:
        if verb == "unchanged":
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if e.kind == "symlink":
            _remove(path)
            os.symlink(e.link, path)
        else:
            write_atomic(path, e.data, e.mode)
    for rel in stale:
        _remove_owned(root, rel, old_files[rel], log)
        backup_copy = root / BACKUP_DIR / rel
        if backup_copy.exists() or backup_copy.is_symlink():
            _remove(backup_copy)
    write_atomic(root / MANIFEST, manifest_text.encode(), 0o644)
    changed = sum(1 for a in actions if a[0] != "unchanged")
    log(
        f"installed the TF-Locoformer plugin into {root}: {changed} path(s) written, "
        f"{len(actions) - changed} already up to date; undo with --uninstall"
    )


def uninstall(root: Path, dry_run: bool, log) -> None:
    validate_root(root)
    manifest = load_manifest(root)
    if manifest is None:
        log(f"no TF-Locoformer plugin installed in {root}: nothing to do")
        return
    check_unchanged_since_install(root, manifest)
    files = manifest["files"]
    if dry_run:
        for rel, info in sorted(files.items()):
            log(f"[dry-run] {'restore' if info.get('backup') else 'remove':<9} {rel}")
        log(f"[dry-run] nothing changed in {root}")
        return
    for rel, info in sorted(files.items()):
        _remove_owned(root, rel, info, log)
    _remove_empty_dirs(root, manifest.get("created_dirs", []), log)
    shutil.rmtree(root / STATE_DIR)
    log(f"uninstalled the TF-Locoformer plugin from {root}: ESPnet's files are restored")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="copy_files_to_espnet.sh",
        description="Install the TF-Locoformer ESPnet plugin (separators, losses, "
        "augmentation, registration patches, recipes) into an ESPnet tree, or remove it.",
    )
    parser.add_argument(
        "espnet_root",
        type=Path,
        help="ESPnet source checkout, or site-packages dir holding espnet2/",
    )
    parser.add_argument(
        "--uninstall",
        action="store_true",
        help="restore ESPnet's files and remove everything the plugin added",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    root = args.espnet_root.resolve()
    try:
        if args.uninstall:
            uninstall(root, args.dry_run, print)
        else:
            install(root, args.dry_run, print)
    except InstallError as e:
        print(f"copy_files_to_espnet.sh: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(
            f"copy_files_to_espnet.sh: error: {e.filename or root}: {e.strerror}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
