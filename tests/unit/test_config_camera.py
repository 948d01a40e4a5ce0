"""[camera]: its defaults, a bad value named by file and key, and what config check says."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import config_warnings, describe, load_config
from device.errors import ConfigError
from device.images import ImageLimits


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgevoice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_camera_is_off_by_default_with_moderate_pictures() -> None:
    camera = load_config(None).camera
    assert (camera.enabled, camera.image_path) == (False, None)
    assert camera.limits == ImageLimits(max_edge_px=1024, max_bytes=300_000, detail="auto")


def test_a_camera_section_gives_typed_values(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            '[camera]\nenabled = true\nmax_edge_px = 512\nmax_bytes = 50000\ndetail = "low"\n'
            'image_path = "/srv/pictures"\n',
        )
    )
    camera = config.camera
    assert camera.enabled is True
    assert camera.image_path == Path("/srv/pictures")
    assert camera.limits == ImageLimits(512, 50_000, "low")
    assert "camera:   on, pictures up to 512 px and 50000 bytes, detail low" in describe(config)
    assert "camera:   off" in describe(load_config(None))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('enabled = "yes"', 'camera.enabled: expected true or false, got a string ("yes")'),
        ("max_edge_px = 4096", "camera.max_edge_px: 4096 is out of range; allowed: 64..2048"),
        ("max_bytes = 100", "camera.max_bytes: 100 is out of range; allowed: 10000..5000000"),
        ('detail = "medium"', 'camera.detail: "medium" is not a detail level; allowed: auto, low'),
        ('image_path = "pics"', 'camera.image_path: "pics" is not an absolute path'),
        ("resolution = 5", "camera.resolution: unknown key"),
    ],
)
def test_bad_camera_values_name_the_file_and_key(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, f"[camera]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_config_check_points_out_a_camera_that_cannot_work(tmp_path: Path) -> None:
    fake_without_pictures = load_config(
        _write(tmp_path, '[device]\nhardware = "fake"\n[camera]\nenabled = true\n')
    )
    assert any("needs camera.image_path" in w for w in config_warnings(fake_without_pictures))
    real_with_pictures = load_config(_write(tmp_path, '[camera]\nimage_path = "/srv/p"\n'))
    assert any("fake hardware only" in w for w in config_warnings(real_with_pictures))
    assert not [w for w in config_warnings(load_config(None)) if "camera" in w]
