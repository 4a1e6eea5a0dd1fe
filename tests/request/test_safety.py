"""The banned-word check: folded spellings match, words that merely contain a banned one do not."""

import pytest

from engine.request.safety import banned_in, check_prompts, words

BANNED = ("ass", "nude", "blood bath")

MATCHES = [
    ("ass", "ass"),
    ("an ASS walks in", "ass"),
    ("@ss", "ass"),
    ("a$$", "ass"),
    ("a.s.s", "ass"),
    ("a-s_s", "ass"),
    ("n00d3 portrait", None),  # n00d3 folds to "noode", not "nude"
    ("nud3", "nude"),
    ("NÚDE model", "nude"),
    ("ｎｕｄｅ", "nude"),  # full-width letters (NFKD)
    ("n.u.d.e, painting", "nude"),
    ("(nude:1.3)", "nude"),
    ("a blood bath at dawn", "blood bath"),
    ("a BLOOD-bath", None),  # joined into one word, "bloodbath": not the two words
    ("blood, bath", "blood bath"),  # punctuation between two words still separates them
]
MUST_NOT_MATCH = [
    "class",
    "assistant",
    "bass guitar",
    "passage",
    "nudes",
    "denude",
    "bloodbathing",
    "a bath of blood",
    "",
]


@pytest.mark.parametrize(("prompt", "entry"), MATCHES)
def test_what_must_match(prompt, entry):
    assert banned_in(prompt, BANNED) == entry


@pytest.mark.parametrize("prompt", MUST_NOT_MATCH)
def test_what_must_not_match(prompt):
    assert banned_in(prompt, BANNED) is None


def test_the_banned_entry_is_folded_too():
    assert banned_in("a nude figure", ["NÜDE"]) == "NÜDE"
    assert banned_in("a nude figure", ["  "]) is None  # an empty entry bans nothing


def test_words_fold_case_accents_and_look_alikes():
    assert words("Çafé 4 @ll, 5h0w-c4se") == ["cafe", "a", "all", "showcase"]


def test_the_refusal_does_not_repeat_the_word():
    sentence = check_prompts(["a calm lake", "ugly, @ss"], BANNED)
    assert sentence is not None and "ass" not in sentence.lower()
    assert sentence.endswith(".") and sentence.count(". ") == 0
    assert check_prompts(["a calm lake", ""], BANNED) is None
