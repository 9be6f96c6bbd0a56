"""Test doubles for ``vosx bench``: a fake ``adb`` on PATH emulating phones, fake device tools."""
