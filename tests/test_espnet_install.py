"""copy_files_to_espnet.sh: install, idempotence, uninstall, refusal of unknown ESPnet versions.

Every test works on a private copy of the venv's espnet2 package (never the real one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_env import REPO_ROOT, installer, pristine_espnet_copy, run_installer, snapshot

STATE = "espnet2/.locoformer_plugin"


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A pristine copy of the installed espnet2 package, as ``<root>/espnet2``."""
    return pristine_espnet_copy(tmp_path / "site-packages")


def test_install_twice_equals_once(pkg: Path):
    first = run_installer(pkg)
    assert first.returncode == 0, first.stderr
    assert "patched   espnet2/tasks/enh.py" in first.stdout
    assert "patched   espnet2/enh/espnet_model.py" in first.stdout
    once = snapshot(pkg)

    second = run_installer(pkg)
    assert second.returncode == 0, second.stderr
    assert snapshot(pkg) == once
    assert "0 path(s) written" in second.stdout
    assert "unchanged espnet2/tasks/enh.py" in second.stdout

    enh = (pkg / "espnet2/tasks/enh.py").read_text()
    assert "tflocoformer=TFLocoformerSeparator," in enh
    assert "bslocoformer=BSLocoformerSeparator," in enh
    # the locoformer symlink of the repo arrives as a real directory of the standalone files
    loco = pkg / "espnet2/enh/separator/locoformer"
    assert loco.is_dir() and not loco.is_symlink()
    for src in (REPO_ROOT / "standalone").glob("*.py"):
        assert (loco / src.name).read_bytes() == src.read_bytes(), src.name
    # patches are not copied, the manifest lists every owned path
    assert not list(pkg.rglob("*.patch"))
    manifest = json.loads((pkg / STATE / "manifest.json").read_text())
    assert manifest["files"]["espnet2/tasks/enh.py"]["origin"] == "patch"
    assert manifest["files"]["espnet2/tasks/enh.py"]["backup"] is True
    assert "espnet2/enh/separator/locoformer" in manifest["created_dirs"]


def test_uninstall_restores_espnet_byte_identical(pkg: Path):
    before = snapshot(pkg)
    assert run_installer(pkg).returncode == 0
    # Python would leave bytecode next to the added modules; uninstall must clean it up too
    cache = pkg / "espnet2/enh/separator/locoformer/__pycache__"
    cache.mkdir()
    (cache / "stft.cpython-311.pyc").write_bytes(b"pyc")
    loss_cache = pkg / "espnet2/enh/loss/criterions/__pycache__"
    loss_cache.mkdir(exist_ok=True)
    (loss_cache / "multichannel.cpython-311.pyc").write_bytes(b"pyc")

    proc = run_installer("--uninstall", pkg)
    assert proc.returncode == 0, proc.stderr
    assert "restored  espnet2/tasks/enh.py" in proc.stdout
    assert "removed   espnet2/enh/music_augmentation.py" in proc.stdout
    assert snapshot(pkg) == before
    assert not (pkg / "espnet2/enh/separator/locoformer").exists()
    assert not (loss_cache / "multichannel.cpython-311.pyc").exists()

    again = run_installer("--uninstall", pkg)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_doctored_enh_py_is_refused_untouched(pkg: Path):
    enh = pkg / "espnet2/tasks/enh.py"
    text = enh.read_text()
    assert "        uses2=USES2Separator,\n" in text
    enh.write_text(text.replace("        uses2=USES2Separator,\n", ""))
    before = snapshot(pkg)

    proc = run_installer(pkg)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one clear line, no traceback
    assert str(enh) in lines[0] and "does not match enh.patch" in lines[0]
    assert snapshot(pkg) == before  # nothing written, not even the plugin's new files
    assert not (pkg / STATE).exists()


def test_espnet_file_replaced_by_the_plugin_is_restored(pkg: Path):
    """A future ESPnet shipping its own tflocoformer_separator.py gets it back on uninstall."""
    own = pkg / "espnet2/enh/separator/tflocoformer_separator.py"
    own.write_bytes(b"# ESPnet's own TF-Locoformer\n")
    before = snapshot(pkg)
    proc = run_installer(pkg)
    assert proc.returncode == 0, proc.stderr
    assert "replaced  espnet2/enh/separator/tflocoformer_separator.py" in proc.stdout
    assert (
        own.read_bytes()
        == (REPO_ROOT / "espnet2/enh/separator/tflocoformer_separator.py").read_bytes()
    )
    assert run_installer(pkg).returncode == 0  # idempotent with a backup too
    assert run_installer("--uninstall", pkg).returncode == 0
    assert snapshot(pkg) == before


def test_uninstall_refuses_a_file_changed_after_install(pkg: Path):
    assert run_installer(pkg).returncode == 0
    enh = pkg / "espnet2/tasks/enh.py"
    enh.write_text(enh.read_text() + "# local edit\n")
    before = snapshot(pkg)
    proc = run_installer("--uninstall", pkg)
    assert proc.returncode == 1
    assert str(enh) in proc.stderr and "changed after the plugin was installed" in proc.stderr
    assert snapshot(pkg) == before


def test_dry_run_changes_nothing(pkg: Path):
    before = snapshot(pkg)
    proc = run_installer("--dry-run", pkg)
    assert proc.returncode == 0, proc.stderr
    assert "[dry-run] patched   espnet2/tasks/enh.py" in proc.stdout
    assert snapshot(pkg) == before
    assert run_installer(pkg).returncode == 0
    installed = snapshot(pkg)
    proc = run_installer("--uninstall", "--dry-run", pkg)
    assert "[dry-run] restore   espnet2/tasks/enh.py" in proc.stdout
    assert snapshot(pkg) == installed


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "no such directory"),
        (lambda root: root.mkdir(), "not an ESPnet tree"),
    ],
)
def test_bad_root_gives_one_line_error(tmp_path: Path, make, message):
    root = tmp_path / "nowhere"
    make(root)
    proc = run_installer(root)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and str(root) in proc.stderr


def test_source_checkout_gets_recipe_and_speech_configs(tmp_path: Path, monkeypatch):
    """A checkout (espnet2/ + egs2/): recipes are copied, configs only into existing recipes."""
    # a fake plugin repository, so this test does not depend on the recipe's current files
    repo = tmp_path / "repo"
    (repo / "espnet2/enh").mkdir(parents=True)
    (repo / "espnet2/enh/new_module.py").write_text("X = 1\n")
    (repo / "espnet2/tasks").mkdir()
    (repo / "espnet2/tasks/enh.patch").write_bytes(
        (REPO_ROOT / "espnet2/tasks/enh.patch").read_bytes()
    )
    recipe = repo / "egs2/musdb18hq/enh1"
    (recipe / "local").mkdir(parents=True)
    (recipe / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(recipe / "run.sh", 0o755)
    (recipe / "local/prep.py").write_text("pass\n")
    os.symlink("../../TEMPLATE/enh1/scripts", recipe / "scripts")
    for generated in ("data", "exp", "dump"):
        (recipe / generated).mkdir()
        (recipe / generated / "junk.txt").write_text("generated\n")
    (recipe / "local/out.wav").write_bytes(b"RIFF")
    for corpus in ("wsj0_2mix", "librimix"):
        (repo / f"egs2/{corpus}/enh1/conf/tuning").mkdir(parents=True)
        (repo / f"egs2/{corpus}/enh1/conf/tuning/train_enh_tflocoformer.yaml").write_text(
            f"# {corpus}\n"
        )

    checkout = tmp_path / "espnet"
    pristine_espnet_copy(checkout)
    (checkout / "egs2/wsj0_2mix/enh1/conf/tuning").mkdir(parents=True)
    (checkout / "egs2/wsj0_2mix/enh1/conf/tuning/train_enh_rnn.yaml").write_text("rnn\n")
    before = snapshot(checkout)

    inst = installer()
    monkeypatch.setattr(inst, "REPO", repo)
    lines: list[str] = []
    inst.install(checkout, dry_run=False, log=lines.append)
    out = "\n".join(lines)

    assert (checkout / "egs2/musdb18hq/enh1/run.sh").read_text() == "#!/bin/sh\necho run\n"
    assert os.access(checkout / "egs2/musdb18hq/enh1/run.sh", os.X_OK)
    assert os.readlink(checkout / "egs2/musdb18hq/enh1/scripts") == "../../TEMPLATE/enh1/scripts"
    for skipped in ("data", "exp", "dump", "local/out.wav"):
        assert not (checkout / "egs2/musdb18hq/enh1" / skipped).exists(), skipped
    tuning = checkout / "egs2/wsj0_2mix/enh1/conf/tuning"
    assert (tuning / "train_enh_tflocoformer.yaml").read_text() == "# wsj0_2mix\n"
    assert not (checkout / "egs2/librimix").exists()
    assert "skipped egs2/librimix/enh1/" in out
    assert (checkout / "espnet2/enh/new_module.py").read_text() == "X = 1\n"

    installed = snapshot(checkout)
    inst.install(checkout, dry_run=False, log=lambda _: None)
    assert snapshot(checkout) == installed

    inst.uninstall(checkout, dry_run=False, log=lambda _: None)
    assert snapshot(checkout) == before


def test_this_repository_installs_into_a_source_checkout(tmp_path: Path):
    checkout = pristine_espnet_copy(tmp_path / "espnet")
    corpora = ("wsj0_2mix", "whamr", "librimix", "dns_ins20")
    for corpus in corpora:
        (checkout / f"egs2/{corpus}/enh1/conf/tuning").mkdir(parents=True)
    before = snapshot(checkout)

    proc = run_installer(checkout)
    assert proc.returncode == 0, proc.stderr
    for src in REPO_ROOT.glob("egs2/*/enh1/conf/tuning/train_enh_tflocoformer*.yaml"):
        if src.parts[-5] in corpora:
            rel = src.relative_to(REPO_ROOT)
            assert (checkout / rel).read_bytes() == src.read_bytes(), rel
    assert (checkout / "egs2/musdb18hq/enh1").is_dir()
    assert run_installer(checkout).returncode == 0
    assert run_installer("--uninstall", checkout).returncode == 0
    assert snapshot(checkout) == before


def test_patch_applier_tolerates_offsets_and_rejects_ambiguity(tmp_path: Path):
    inst = installer()
    patch = tmp_path / "x.patch"
    patch.write_text("comment line\n--- a/f.py\n+++ b/f.py\n@@ -2,2 +2,3 @@\n b\n+new\n c\n")
    (fp,) = inst.parse_patch(patch)
    assert fp.target == "f.py"
    assert inst.apply_patch("a\nb\nc\n", fp, "f.py") == "a\nb\nnew\nc\n"
    # shifted by two lines (an ESPnet release that added imports above): still found
    assert inst.apply_patch("x\ny\na\nb\nc\n", fp, "f.py") == "x\ny\na\nb\nnew\nc\n"
    with pytest.raises(inst.InstallError, match="f.py does not match x.patch.*context found 2x"):
        inst.apply_patch("b\nc\nz\nb\nc\n", fp, "f.py")
    with pytest.raises(inst.InstallError, match="context not found"):
        inst.apply_patch("a\nb\nd\n", fp, "f.py")


@pytest.mark.slow
def test_installed_copy_registers_everything(pkg: Path):
    assert run_installer(pkg).returncode == 0
    code = (
        "import espnet2.tasks.enh as e;"
        "print(e.separator_choices.choices(), e.criterion_choices.choices(),"
        " e.loss_wrapper_choices.choices(), e.preprocessor_choices.choices())"
    )
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=pkg
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in (
        "tflocoformer",
        "bslocoformer",
        "mc_snr",
        "mc_si_sdr",
        "mc_l1",
        "mc_l2",
        "mc_mrstft",
        "stem_fixed_order",
        "music_augment",
    ):
        assert f"'{name}'" in proc.stdout, name
