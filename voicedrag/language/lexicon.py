"""Words of the command language that do not depend on a model's rules.

The parts a model has, and part-specific verbs, come from its rules file;
everything else a command may say is listed here.
"""

from __future__ import annotations

# Verbs and control words come from the one table in intents.py; re-exported here with the rest
# of the language.
from voicedrag.intents import (  # noqa: F401
    CONTROL_WORDS,
    CONTROLS,
    DEFAULT_PART,
    VERB_TABLE,
    VERB_WORDS,
)

# Generic verbs -> canonical action.
VERBS: dict[str, str] = VERB_WORDS

# Adjectives after "make the X ..." -> the action they ask for, and the
# amount they mean when a verb already names the action ("open it wider").
ADJECTIVES: dict[str, tuple[str, float]] = {
    "bigger": ("enlarge", 1.5),
    "larger": ("enlarge", 1.5),
    "big": ("enlarge", 1.5),
    "large": ("enlarge", 1.5),
    "huge": ("enlarge", 2.0),
    "giant": ("enlarge", 2.0),
    "smaller": ("shrink", 0.6),
    "small": ("shrink", 0.6),
    "tiny": ("shrink", 0.4),
    "little": ("shrink", 0.5),
    "tinier": ("shrink", 0.4),
    "longer": ("lengthen", 1.5),
    "long": ("lengthen", 1.5),
    "taller": ("lengthen", 1.5),
    "shorter": ("shorten", 0.6),
    "short": ("shorten", 0.6),
    "wider": ("widen", 1.5),
    "wide": ("widen", 1.5),
    "broader": ("widen", 1.5),
    "broad": ("widen", 1.5),
    "narrower": ("narrow", 0.6),
    "thinner": ("narrow", 0.6),
    "slimmer": ("narrow", 0.6),
    "happy": ("smile", 1.0),
    "happier": ("smile", 1.3),
    "cheerful": ("smile", 1.0),
    "sad": ("frown", 1.0),
    "sadder": ("frown", 1.3),
    "unhappy": ("frown", 1.0),
    "grumpy": ("frown", 1.0),
}

# Verbs that make the next adjective or verb the action ("make him smile").
MAKE_WORDS = frozenset({"make", "makes", "give", "gives", "let", "get", "have", "has"})

# What a misheard word may be corrected to (besides the rules' part words).
# The canonical verbs and control words come from the tables; these are the other common words.
CORRECTION_TARGETS = (
    frozenset({v.action for v in VERB_TABLE})
    | frozenset(CONTROLS)
    | frozenset(
        """
shut lift drop rotate look grin make bigger smaller longer shorter wider narrower push pull
up down left right both little bit slightly wide much very pixels point corners cancel
""".split()
    )
)  # noqa: SIM905 - a word list reads best as words

# Words of the language beside the verbs and the rules' parts that a speech recogniser is primed
# with (directions, amounts, the words of explicit drags).
PROMPT_WORDS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "both",
    "little",
    "bit",
    "slightly",
    "wide",
    "pixels",
    "point",
    "to",
    "by",
    "and",
    "then",
)

# Single-word amounts (multipliers of the rule's default displacement).
AMOUNTS: dict[str, float] = {
    "slightly": 0.5,
    "somewhat": 0.75,
    "barely": 0.3,
    "gently": 0.6,
    "softly": 0.6,
    "much": 1.5,
    "very": 1.5,
    "way": 1.8,
    "really": 1.5,
    "widely": 1.5,
    "more": 1.3,
    "extra": 1.4,
    "fully": 2.0,
    "completely": 2.0,
    "lots": 1.8,
    "greatly": 1.6,
    "further": 1.5,
    "farther": 1.5,
    "hugely": 2.0,
    "super": 1.6,
    "less": 0.6,
    "twice": 2.0,
    # "a bit" whose article the recogniser merged into the previous word ("open the eye, bit").
    "bit": 0.5,
}

# Multi-word phrases, replaced by one token before anything else. The
# replacement is a word known to the lexicon (an "_" joins several words).
PHRASES: dict[str, str] = {
    # amounts
    "a little bit": "a_little",
    "a little": "a_little",
    "a bit": "a_little",
    "a tad": "a_little",
    "a touch": "a_little",
    "a tiny bit": "a_tiny_bit",
    # ... without the article, which a recogniser often runs into the word before ("eye tiny bit").
    "tiny bit": "a_tiny_bit",
    "little bit": "a_little",
    "just a bit": "a_little",
    "just a little": "a_little",
    "a smidge": "a_tiny_bit",
    "a hair": "a_tiny_bit",
    "a lot": "a_lot",
    "a lot more": "a_lot",
    "a great deal": "a_lot",
    "quite a bit": "a_lot",
    "so much": "a_lot",
    "very much": "a_lot",
    "all the way": "all_the_way",
    "as far as possible": "all_the_way",
    "even more": "more",
    "a bit more": "more",
    "a little more": "more",
    "a fair bit": "more",
    # directions and sides
    "to the left": "left_dir",
    "to the right": "right_dir",
    "towards the left": "left_dir",
    "towards the right": "right_dir",
    "toward the left": "left_dir",
    "toward the right": "right_dir",
    "over to the left": "left_dir",
    "over to the right": "right_dir",
    "to your left": "left_dir",
    "to your right": "right_dir",
    "to its left": "left_dir",
    "to its right": "right_dir",
    "on the left": "left_side",
    "on the right": "right_side",
    "left and right": "both",
    "both sides": "both",
    "each side": "both",
    # verbs with particles
    "perk up": "perk",
    "open up": "open",
    "pull up": "raise",
    "push up": "raise",
    "prick up": "perk",
    "turn around": "turn",
    "look over": "look",
    "make bigger": "enlarge",
    "close up": "close",
    "eye brows": "eyebrows",
    "eye brow": "eyebrow",
    "eye lids": "eyelids",
    "eye lid": "eyelid",
    # control
    "go back": "undo",
    "step back": "undo",
    "take it back": "undo",
    "take that back": "undo",
    "undo that": "undo",
    "start over": "reset",
    "start again": "reset",
    "begin again": "reset",
    "from scratch": "reset",
    "back to the original": "reset",
    "the original": "reset",
    "what can i say": "help",
    "what can i do": "help",
    "show the commands": "help",
    # filler
    "could you please": "",
    "could you": "",
    "can you": "",
    "would you please": "",
    "would you": "",
    "will you": "",
    "i want you to": "",
    "i'd like you to": "",
    "i would like you to": "",
    "i want to": "",
    "i'd like to": "",
    "i would like to": "",
    "go ahead and": "",
    "let us": "",
    "try to": "",
    "i need you to": "",
    "you know": "",
    "kind of": "",
    "sort of": "",
    "i want": "",
    "i'd like": "",
    "i would like": "",
    "do it": "",
    "can i": "",
    "can we": "",
    "could we": "",
    "let's": "",
    "lets": "",
    "i said": "",
    "i mean": "",
}

PHRASE_AMOUNTS: dict[str, float] = {"a_little": 0.5, "a_tiny_bit": 0.3, "a_lot": 1.8, "all_the_way": 2.0}

DIRECTION_WORDS: dict[str, str] = {
    "up": "up",
    "upward": "up",
    "upwards": "up",
    "higher": "up",
    "above": "up",
    "skyward": "up",
    "down": "down",
    "downward": "down",
    "downwards": "down",
    "below": "down",
    "leftward": "left",
    "leftwards": "left",
    "left_dir": "left",
    "rightward": "right",
    "rightwards": "right",
    "right_dir": "right",
}
SIDE_WORDS: dict[str, str] = {"left_side": "left", "right_side": "right"}
LEFT_RIGHT = frozenset({"left", "right"})
BOTH_WORDS = frozenset({"both", "all", "each"})

# Words a control command may carry ("save the picture", "undo the last edit").
CONTROL_OBJECTS = frozenset(
    {
        "picture",
        "image",
        "photo",
        "file",
        "edit",
        "edits",
        "change",
        "changes",
        "last",
        "step",
        "that",
        "it",
        "this",
        "everything",
        "all",
        "previous",
        "one",
        "me",
        "work",
        "result",
        "drawing",
        "now",
    }
)

# Parts of other model domains: a face model must say it has none of them.
FOREIGN_PARTS = frozenset(
    {
        "tail",
        "tails",
        "paw",
        "paws",
        "whisker",
        "whiskers",
        "wing",
        "wings",
        "beak",
        "horn",
        "horns",
        "mane",
        "hair",
        "beard",
        "mustache",
        "moustache",
        "tongue",
        "cheek",
        "cheeks",
        "neck",
        "arm",
        "arms",
        "leg",
        "legs",
        "hand",
        "hands",
        "foot",
        "feet",
        "body",
        "fur",
        "forehead",
        "shoulder",
        "shoulders",
        "wheel",
        "wheels",
        "tooth",
        "nostril",
        "mouth",
        "eyes",
        "eye",
        "ears",
        "ear",
        "nose",
        "head",
        "face",
        "lips",
        "jaw",
        "brows",
        "eyebrows",
        "eyebrow",
        "nostrils",
        "snout",
        "muzzle",
        "trunk",
        "fin",
        "fins",
    }
)

# Motions and requests no rule can draw as one drag; known so that they are never
# "corrected" into a command that sounds alike ("nod" is not "knit").
UNSUPPORTED = frozenset(
    {
        "nod",
        "nods",
        "shake",
        "shakes",
        "wave",
        "waves",
        "wag",
        "wags",
        "spin",
        "jump",
        "dance",
        "sing",
        "talk",
        "speak",
        "walk",
        "run",
        "color",
        "colour",
        "paint",
        "draw",
        "delete",
        "remove",
        "add",
        "hello",
        "hi",
        "thanks",
        "thank",
        "yes",
        "yeah",
        "nope",
        "what",
        "why",
        "how",
        "who",
        "where",
        "when",
        "red",
        "blue",
        "green",
        "black",
        "white",
        "blonde",
        "dark",
        "bright",
        "brighter",
        "darker",
        "cat",
        "dog",
        "horse",
        "lion",
        "car",
        "house",
        "tree",
        "sky",
        "old",
        "older",
        "young",
        "younger",
        "surprised",
        "angry",
        "scared",
        "sleepy",
        "tired",
        "awake",
        "asleep",
        "sleep",
        "sleeping",
        "wiggle",
        "twitch",
        "hang",
        "stand",
        "sit",
        "show",
        "keep",
    }
)

# Motions over time that have a still pose a rule can draw: the edit to offer instead.
MOTION_HINTS: dict[str, str] = {
    "nod": "turn the head down",
    "nods": "turn the head down",
    "shake": "turn the head to the left",
    "shakes": "turn the head to the left",
}

PRONOUNS = frozenset({"it", "them", "they", "those", "these", "ones"})
NEGATIONS = frozenset({"not", "don't", "dont", "never"})
CORNER_WORDS = frozenset({"corner", "corners"})

SEPARATORS = frozenset({"and", "then", "also", "plus", "afterwards", "next", "after", "finally", "_sep"})

# Words of explicit point drags.
# What a recogniser writes for a spoken "comma" between two numbers ("64 come 80", "70 common 90").
COMMA_SOUNDS = frozenset({"comma", "come", "common", "coming", "kamu", "calm", "karma", "commas", "comer"})
POINT_WORDS = frozenset({"point", "points", "location", "position", "pixel_at", "spot", "coordinate", "coordinates"})
PIXEL_WORDS = frozenset({"pixels", "pixel", "px", "pics", "pix"})
TO_WORDS = frozenset({"to", "towards", "toward", "onto", "into", "till", "until"})
FROM_WORDS = frozenset({"from"})
BY_WORDS = frozenset({"by"})
AT_WORDS = frozenset({"at", "of"})

# Words that carry no meaning for an edit.
STOPWORDS = frozenset(
    """
the a an his her its their my your our this that these of some any to in on for with so well now just
please kindly okay ok um uh umm uhh er erm hmm ah oh hey alright right_now maybe actually also
him he she me us you we i'm you're is are be can could would will should do does want like need
little bit same way way's there here over there's side sides face's area part region
""".split()
) - {"to", "of", "way", "little"}  # noqa: SIM905

UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred", "thousand"}
