"""README.md is where installers look up an option: every key of the config is there."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from device.config import load_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_config_section_and_key_is_named_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    config = load_config(None)
    missing: list[str] = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue  # the file the config came from, not a section
        if f"[{section.name}]" not in text:
            missing.append(f"[{section.name}]")
        for key in dataclasses.fields(value):
            if not re.search(rf"\b{re.escape(key.name)}\b", text):
                missing.append(f"{section.name}.{key.name}")
    assert missing == [], f"README.md does not document: {', '.join(missing)}"
