"""A prompt's words: keyframes or one prompt with a literal ``|``, keys inside the clip, and text
from a member or a file made printable."""

import pytest

from engine.errors import UserError
from engine.request.params import RenderParams, keyframes
from engine.request.text import printable


def test_a_bar_without_frame_numbers_is_part_of_one_prompt():
    assert keyframes("a cat | oil painting") == [(0, "a cat | oil painting")]
    assert (
        RenderParams(prompt="a cat | oil painting, 4k | trending").validate().prompt
        == "a cat | oil painting, 4k | trending"
    )


def test_keyframes_need_a_frame_number_on_every_part():
    assert keyframes("0: a cat | 24: a tiger") == [(0, "a cat"), (24, "a tiger")]
    with pytest.raises(UserError, match="a frame number on every part.*could not read 'a tiger'"):
        keyframes("0: a cat | a tiger")  # a part that lost its number is not read as text


def test_a_keyframe_past_the_clip_is_refused_naming_it_and_the_clips_length():
    assert keyframes("0: a cat | 7: a tiger", frames=8) == [(0, "a cat"), (7, "a tiger")]
    with pytest.raises(UserError) as refused:
        RenderParams(prompt="0: a cat | 99: a tiger", frames=8).validate()  # the bot's and the CLI's check
    assert str(refused.value) == (
        "The keyframe at frame 99 is past the end of the clip, which has 8 frames (0 to 7); "
        "give more frames or an earlier keyframe."
    )
    with pytest.raises(UserError, match="frame 8 is past the end"):
        keyframes("0: a cat | 8: a tiger", frames=8)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a \x1b[31mred\x1b[0m cat", "a red cat"),  # SGR colours, the whole sequence
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # clear screen, cursor home
        ("\x1b]8;;https://evil.invalid\x07link\x1b]8;;\x07", "link"),  # OSC 8 hyperlink
        ("hidden\rshown", "hiddenshown"),
        ("nul\x00bell\x07del\x7fcsi\x9b31m", "nulbelldelcsi31m"),  # C0, DEL, C1 (a lone CSI byte)
        ("\u202eevil\u202c txt", "evil txt"),  # a right-to-left override
        ("two\nlines\tand a tab", "two lines\tand a tab"),
        ("ünïcödé 猫 🐱", "ünïcödé 猫 🐱"),
    ],
)
def test_printable_takes_out_escapes_and_control_characters_and_keeps_the_rest(text, shown):
    assert printable(text) == shown


def test_printable_keeps_newlines_when_asked():
    assert printable("line one\n\x1b[1mline two\x1b[0m", newlines=True) == "line one\nline two"
