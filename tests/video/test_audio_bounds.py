"""The audio check's work is bounded by the limit, not by the file: a header declaring hours is
answered from the header alone, and a header that lies short cannot make a long decode."""

from __future__ import annotations

import pytest
from support.media import write_flac

from engine.video.read import check_audio


def test_a_flac_declaring_four_hours_is_answered_from_its_header(tmp_path):
    # One second of silence that says it is four hours: decoding it would find 1 s, so 4 h is the header's.
    path = write_flac(tmp_path / "silence.flac", seconds=1, declared=4 * 3600)
    assert path.stat().st_size < 20_000
    assert check_audio(path, max_seconds=600) == pytest.approx(4 * 3600)


def test_a_header_that_lies_short_decodes_no_more_than_the_limit_and_a_second(tmp_path):
    path = write_flac(tmp_path / "longer.flac", seconds=6, declared=1)
    assert check_audio(path, max_seconds=2) == pytest.approx(3, abs=0.05)  # not the 6 s it holds


def test_a_truthful_flac_within_the_limit_is_decoded_for_its_length(tmp_path):
    assert check_audio(write_flac(tmp_path / "short.flac", seconds=2.5), max_seconds=600) == pytest.approx(
        2.5, abs=0.01
    )
