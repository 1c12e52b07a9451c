"""``make gpu-check`` must run without a GPU (``--device cpu``): the same script, smaller."""

import json

import pytest

from puzzle_core import gpu_check


def test_gpu_check_runs_on_cpu_and_writes_its_record(tmp_path, capsys):
    """PreActResNet18 channels_last, and AMP (bfloat16 on a CPU: slow, so on ResNet-8)."""
    common = ["--device", "cpu", "--batch", "2", "--steps", "2", "--warmup", "0",
              "--workers", "2", "--out", str(tmp_path)]  # fmt: skip
    gpu_check.main([*common, "--models", "preactresnet18", "--settings", "fp32-cl"])
    report = gpu_check.main([*common, "--models", "resnet8", "--settings", "amp", "fp32"])
    files = sorted(tmp_path.glob("gpu-check-cpu-*.json"))
    assert len(files) == 2
    saved = json.loads(files[-1].read_text())
    assert json.loads(files[0].read_text())["settings"][0]["model"] == "preactresnet18"
    assert saved["settings"] == report["settings"]
    assert saved["cuda_tests"]["ran"] is False and "cpu" in saved["cuda_tests"]["why"]
    assert {"commit", "dirty", "packages", "hardware"} <= set(saved["provenance"])
    assert [(s["amp"], s["channels_last"]) for s in saved["settings"]] == [
        (True, False),
        (False, False),
    ]
    for s in saved["settings"]:
        assert s["skipped"] is None and s["steps"] == 2
        labels = {"vanilla", "puzzlemix", "puzzlemix_w2", "puzzlemix_p2", "puzzlemix_overlap"}
        assert set(s["ms"]) == labels
        assert all(v > 0 for v in s["ms"].values())
        for label in labels - {"vanilla"}:
            assert s["ratio"][label] == pytest.approx(s["ms"][label] / s["ms"]["vanilla"], rel=1e-2)
            assert s["epoch_s"][label] > 0
        for label in ("puzzlemix", "puzzlemix_w2", "puzzlemix_p2"):
            assert {"saliency", "mask", "transport", "compose", "forward"} <= set(
                s["stages_ms"][label]
            )
            assert s["epoch_s"][label] > 0
    assert "puzzlemix/vanilla" in capsys.readouterr().out


def test_gpu_check_defaults_and_bad_arguments(tmp_path, capsys):
    assert gpu_check.MODELS == ("preactresnet18", "wrn28_10")
    assert set(gpu_check.SETTINGS) == {"fp32", "amp", "fp32-cl", "amp-cl"}
    for argv, named in (
        (["--models", "vgg"], "--models"),
        (["--settings", "fp64"], "--settings"),
        (["--batch", "0"], "--batch"),
        (["--device", "tpu"], "--device"),
    ):
        with pytest.raises(SystemExit):
            gpu_check.main(["--device", "cpu", "--out", str(tmp_path), *argv])
        assert named in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_make_gpu_check_with_device_cpu(tmp_path):
    """The Makefile target itself, as the README tells a user to run it without a GPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(gpu_check.__file__).resolve().parents[1]
    args = f"--models resnet8 --settings fp32 --batch 2 --steps 1 --warmup 0 --out {tmp_path}"
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(
        ["make", "-s", "gpu-check", "DEVICE=cpu", f"GPU_CHECK_ARGS={args}"],
        cwd=root, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--device cpu" in out.stdout or "[2/2]" in out.stdout
    assert len(list(tmp_path.glob("gpu-check-cpu-*.json"))) == 1
