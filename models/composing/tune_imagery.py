"""What a folk tune is about, in the words a picture's description uses.

The corpus tunes carry imagery in their titles and ABC headers (music21's corpus files: `T:` title,
`O:` region, `R:` kind of song): German, Dutch and Luxembourgish titles in the Essen collection,
Pinyin in its Chinese songs, English in O'Neill's. `imagery(...)` reads those words through a small
glossary of stems (places, seasons, weather, water, plants, birds, night, dance, work, people) and
answers English phrases ("the sea, ships and the shore"), so the sentence model puts a tune about a
ship near a picture of water. Only words the glossary knows are translated: an unknown title adds
nothing rather than a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

IMAGERY: dict[str, str] = {
    "sea": "the sea, waves, ships and the shore",
    "river": "a river, flowing water and its banks",
    "lake": "a lake, still water",
    "rain": "rain, clouds and wet weather",
    "storm": "a storm, wind and dark clouds",
    "forest": "a forest, woods and trees",
    "flowers": "flowers, roses, a garden and green plants",
    "field": "fields, meadows and open farmland under a wide sky",
    "mountain": "mountains, hills and valleys",
    "sky": "the sky, the sun and clouds",
    "night": "night, the moon and the stars",
    "morning": "morning, dawn and the rising sun",
    "spring": "spring, blossom and green leaves",
    "summer": "summer and warm sunny days",
    "autumn": "autumn and falling leaves",
    "winter": "winter, snow and ice",
    "birds": "birds flying, singing in the trees",
    "animals": "animals, a horse, sheep or cattle",
    "town": "a town, its streets, houses and buildings",
    "castle": "a castle, towers and old stone walls",
    "home": "a house and home, a room by the fire",
    "church": "a church, bells and prayer",
    "dance": "dancing people, a dance",
    "work": "people at work, labour and a craft",
    "hunt": "a hunter in the forest",
    "soldier": "soldiers, war and marching",
    "travel": "a journey, wandering along the road",
    "love": "two lovers, a sweetheart",
    "wedding": "a wedding, a bride and a feast",
    "death": "death, a grave and mourning",
    "child": "children playing",
    "drink": "drinking, a tavern and merry company",
    "person": "a person, a face",
}
"""Each theme's English phrase: the words the tune descriptions carry."""

# Stems found anywhere inside a folded (ASCII, lower-case) German, Dutch or Luxembourgish title word:
# compounds are common ("Waldvoegelein" = forest + birds, "Rheinschiffer" = river + sea).
GERMANIC_STEMS: dict[str, tuple[str, ...]] = {
    "meer": ("sea",), "schiff": ("sea",), "zee": ("sea",), "strand": ("sea",), "insel": ("sea",),
    "fischer": ("sea", "work"), "matrose": ("sea",), "seemann": ("sea",),
    "rhein": ("river",), "fluss": ("river",), "bach": ("river",), "wasser": ("river",), "brunn": ("river",),
    "muehl": ("river", "work"), "mueller": ("river", "work"), "mller": ("river", "work"),
    "see": ("lake",), "teich": ("lake",), "regen": ("rain",), "sturm": ("storm",), "wind": ("storm",),
    "wald": ("forest",), "holz": ("forest",), "tanne": ("forest",), "linde": ("forest",), "baum": ("forest",),
    "eiche": ("forest",), "grund": ("forest",),
    "rose": ("flowers",), "blume": ("flowers",), "bluemel": ("flowers",), "bluem": ("flowers",), "blm": ("flowers",),
    "garten": ("flowers",), "nelke": ("flowers",), "lilie": ("flowers",), "rosmarin": ("flowers",),
    "feld": ("field",), "acker": ("field",), "aecker": ("field",), "wiese": ("field",), "heide": ("field",),
    "weide": ("field",), "graserin": ("field", "work"), "pflug": ("field", "work"), "bauer": ("field", "work"),
    "ernte": ("field", "work"), "schnitter": ("field", "work"), "hirt": ("field", "animals"),
    "schaefer": ("field", "animals"), "brombeer": ("field", "flowers"),
    "berg": ("mountain",), "alm": ("mountain",), "alpe": ("mountain",), "tal": ("mountain",), "jodel": ("mountain",),
    "jodl": ("mountain",), "sonne": ("sky",), "himmel": ("sky",), "wolke": ("sky",), "stern": ("night",),
    "nacht": ("night",), "mond": ("night",), "abend": ("night",), "waechter": ("night",), "schlaf": ("night",),
    "morgen": ("morning",), "tageweis": ("morning",), "taget": ("morning",),
    "fruehling": ("spring",), "frhling": ("spring",), "maib": ("spring",), "maien": ("spring",), "sommer": ("summer",),
    "herbst": ("autumn",), "winter": ("winter",), "schnee": ("winter",),
    "vogel": ("birds",), "voegel": ("birds",), "taube": ("birds",), "nachtigall": ("birds", "night"),
    "schwalbe": ("birds",), "kuckuck": ("birds",), "lerche": ("birds",), "hahn": ("birds",), "falke": ("birds",),
    "pferd": ("animals",), "ross": ("animals",), "reiter": ("animals",), "lamm": ("animals",), "laemmer": ("animals",),
    "esel": ("animals",), "wolf": ("animals", "forest"), "schlange": ("animals",),
    "stadt": ("town",), "dorf": ("town",), "doerf": ("town",), "duorf": ("town",), "strass": ("town",),
    "gass": ("town",), "fenster": ("home",), "haus": ("home",), "haeus": ("home",), "stube": ("home",),
    "schloss": ("castle",), "burg": ("castle",), "ritter": ("castle",), "graf": ("castle",), "koenig": ("castle",),
    "konig": ("castle",), "kaiser": ("castle",),
    "gott": ("church",), "kirch": ("church",), "kirmes": ("church", "dance"), "heilig": ("church",), "glocke": ("church",),
    "himmlisch": ("church",), "christ": ("church",),
    "tanz": ("dance",), "walzer": ("dance",), "reigen": ("dance",),
    "schmied": ("work",), "schneider": ("work",), "zimmer": ("work",), "handwerk": ("work",), "waescher": ("work",),
    "waschen": ("work",), "magd": ("work",), "knecht": ("work",), "arbeit": ("work",), "beruf": ("work",),
    "jaeger": ("hunt", "forest"), "jagen": ("hunt", "forest"), "jagd": ("hunt", "forest"),
    "soldat": ("soldier",), "zaldot": ("soldier",), "krieg": ("soldier",), "schlacht": ("soldier",),
    "patrouille": ("soldier",), "husar": ("soldier",), "trommel": ("soldier",),
    "wander": ("travel",), "reise": ("travel",), "abschied": ("travel",), "fahr": ("travel",),
    "lieb": ("love",), "schatz": ("love",), "herz": ("love",), "liefde": ("love",), "freier": ("love",),
    "braut": ("wedding",), "hochzeit": ("wedding",), "verlob": ("wedding",), "ehestand": ("wedding",),
    "tod": ("death",), "bahre": ("death",), "grab": ("death",), "moerder": ("death",), "selbstmord": ("death",),
    "kind": ("child",), "knabe": ("child",), "wiegen": ("child", "night"),
    "trink": ("drink",), "wein": ("drink",), "bier": ("drink",), "wirt": ("drink",), "essig": ("drink",),
    "musikant": ("dance",), "geige": ("dance",),
    "jungfer": ("person",), "maedchen": ("person",), "maidlein": ("person",), "frau": ("person",), "held": ("person",),
}
# Whole English words (O'Neill's titles and kinds of tune).
ENGLISH_WORDS: dict[str, tuple[str, ...]] = {
    **{w: ("sea",) for w in ("sea", "ship", "ships", "sailor", "sailors", "shore", "isle", "island", "bay", "harbour",
                             "ocean", "wave", "waves", "boat", "bantry")},
    **{w: ("river",) for w in ("river", "stream", "banks", "bank", "waters", "water", "well", "mill", "miller")},
    **{w: ("lake",) for w in ("lough", "lake", "loch")},
    **{w: ("forest",) for w in ("wood", "woods", "forest", "tree", "trees", "oak", "thorn", "grove", "bush")},
    **{w: ("flowers",) for w in ("rose", "roses", "flower", "flowers", "garden", "green", "blossom", "lily")},
    **{w: ("field",) for w in ("field", "fields", "meadow", "meadows", "farmer", "plough", "harvest", "hay", "bog",
                               "barley", "rye", "oats")},
    **{w: ("mountain",) for w in ("hill", "hills", "mountain", "mountains", "glen", "valley", "rock", "rocks")},
    **{w: ("night",) for w in ("night", "moon", "moonlight", "star", "stars", "evening", "dark", "sleep")},
    **{w: ("morning",) for w in ("morning", "dawn", "sunrise", "day")},
    **{w: ("sky",) for w in ("sun", "sky", "cloud", "clouds", "bright")},
    **{w: ("spring",) for w in ("spring", "may", "april")},
    **{w: ("summer",) for w in ("summer",)}, **{w: ("autumn",) for w in ("autumn", "harvest")},
    **{w: ("winter",) for w in ("winter", "snow", "frost", "ice")},
    **{w: ("birds",) for w in ("bird", "birds", "lark", "blackbird", "cuckoo", "cuckoo's", "thrush", "wren", "robin",
                               "swallow", "eagle", "nest", "dove", "linnet")},
    **{w: ("animals",) for w in ("horse", "pony", "sheep", "cow", "cows", "goat", "fox", "hare", "hound", "cat")},
    **{w: ("town",) for w in ("town", "city", "street", "village", "road", "market", "bridge", "dublin",
                              "cork", "limerick", "galway", "kerry", "donnybrook", "banbridge")},
    **{w: ("home",) for w in ("home", "house", "cottage", "cabin", "fireside", "door")},
    **{w: ("castle",) for w in ("castle", "king", "queen", "prince", "lord", "lady", "palace", "tower")},
    **{w: ("church",) for w in ("church", "chapel", "abbey", "priest", "bells")},
    **{w: ("dance",) for w in ("dance", "reel", "jig", "hornpipe", "piper", "piper's", "fiddler", "delight", "humors",
                               "fancy", "frolic", "merry", "jolly", "polka")},
    **{w: ("work",) for w in ("tailor", "butcher", "butcher's", "smith", "weaver", "miller", "ploughman",
                              "shepherd", "tinker", "leather")},
    **{w: ("hunt",) for w in ("hunt", "hunter", "hunting", "chase")},
    **{w: ("soldier",) for w in ("soldier", "soldiers", "march", "war", "battle", "advance", "army", "general",
                                 "gen", "captain", "drum", "rebel")},
    **{w: ("travel",) for w in ("return", "journey", "going", "exile", "farewell", "emigrant", "away", "america")},
    **{w: ("love",) for w in ("love", "lover", "lovers", "darling", "sweetheart", "heart", "kiss", "fond")},
    **{w: ("wedding",) for w in ("wedding", "bride", "married", "wife")},
    **{w: ("death",) for w in ("lament", "lamentation", "death", "grave", "wake", "funeral")},
    **{w: ("child",) for w in ("child", "baby", "boy", "boys", "lullaby", "cradle")},
    **{w: ("drink",) for w in ("whiskey", "bowl", "punch", "ale", "drink", "drinking", "tavern", "jug", "bottle")},
    **{w: ("person",) for w in ("maid", "girl", "girls", "lass", "lasses", "man", "woman", "mary", "kitty", "molly",
                                "johnny", "paddy")},
}
# Pinyin words of the Chinese songs whose sense is unambiguous without tones.
PINYIN_WORDS: dict[str, tuple[str, ...]] = {
    "taiyang": ("sky",), "yueguang": ("night",), "qingshan": ("mountain",), "shan": ("mountain",),
    "chashan": ("mountain", "work"), "xiahai": ("sea",), "jianghe": ("river",), "longchuan": ("river", "dance"),
    "lunchuan": ("river",), "chuan": ("river",), "dayu": ("rain",), "xiyu": ("rain",), "yuxia": ("rain",),
    "chunji": ("spring",), "chun": ("spring",), "molihua": ("flowers",), "haohua": ("flowers",), "hua": ("flowers",),
    "kucaihua": ("flowers", "field"), "mianhua": ("field", "work"), "zhaicha": ("field", "work"),
    "chaye": ("field", "work"), "yangmiao": ("field",), "haocao": ("field",), "niao": ("birds",), "niu": ("animals",),
    "liyu": ("river", "animals"), "fengzheng": ("sky",), "fangfengzheng": ("sky",), "wugeng": ("night",),
    "yuanxiao": ("night",), "haozi": ("work",), "changgong": ("work", "field"), "meikuang": ("work",),
    "liangzhu": ("love",), "qiongren": ("person",),
}
GENRES: dict[str, tuple[str, ...]] = {
    "shange": ("mountain",), "tiange": ("field", "work"), "haozi": ("work",), "berufslied": ("work",),
    "jodl": ("mountain",), "jodel": ("mountain",), "walzer": ("dance",), "tanz": ("dance",), "reel": ("dance",),
    "liebes": ("love",), "liebe": ("love",), "hochzeit": ("wedding",), "braut": ("wedding",), "ehestand": ("wedding",),
    "kinder": ("child",), "trink": ("drink",), "wander": ("travel",), "abschied": ("travel",), "bauern": ("field", "work"),
    "geistlich": ("church",), "religi": ("church",), "legenden": ("church",), "tod": ("death",), "soldat": ("soldier",),
    "historisch": ("castle",),
}
REGIONS = (("luxemburg", "Luxembourg"), ("lothringen", "Lorraine"), ("schweiz", "Switzerland, in the Alps"),
           ("bayernalpe", "the Bavarian Alps"), ("oesterreich", "Austria"), ("ungarn", "Hungary"),
           ("daenemark", "Denmark"), ("island", "Iceland"), ("niederlande", "the Netherlands"), ("flam", "Flanders"),
           ("frankreich", "France"), ("schlesien", "Silesia"), ("jugoslawien", "the Balkans"), ("wolga", "the Volga"),
           ("spessart", "the forested Spessart hills"), ("mexiko", "Mexico"), ("china", "China"),
           ("deutschland", "Germany"))
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue",
                       "\x84": "ae", "\x94": "oe", "\x81": "ue", "\x8e": "ae", "\x99": "oe", "\x9a": "ue", "\xe1": "ss"})


@dataclass(frozen=True)
class TuneImagery:
    """A tune's themes (keys of IMAGERY), where it comes from, and the sentence for its description."""

    themes: tuple[str, ...]
    region: str
    sentence: str


def fold(text: str) -> str:
    """Lower-case ASCII: umlauts (and the corpus's CP437 bytes for them) spelt out."""
    return text.translate(_FOLD).lower()


def themes_of(title: str, genre: str = "", collection: str = "essen") -> tuple[str, ...]:
    """The glossary's themes in a title and the `R:` kind of song, in order of first mention."""
    words = re.findall(r"[a-z']+", fold(title))
    found: list[str] = []
    if collection == "oneills":
        for w in words:
            found.extend(ENGLISH_WORDS.get(w, ()))
    else:
        for w in words:
            found.extend(PINYIN_WORDS.get(w, ()))
            for stem, themes in GERMANIC_STEMS.items():
                # a short stem only at either end of a word: "Seemann", "Scheintod", not "Seele"'s middle
                if stem in w if len(stem) > 3 else (w.startswith(stem) or w.endswith(stem)):
                    found.extend(themes)
    for stem, themes in GENRES.items():
        if stem in fold(genre):
            found.extend(themes)
    return tuple(dict.fromkeys(found))


def region_of(origin: str, collection: str) -> str:
    if collection == "oneills":
        return "Ireland"
    folded = fold(origin)
    return next((name for stem, name in REGIONS if stem in folded), "")


def imagery(title: str, origin: str = "", genre: str = "", collection: str = "essen") -> TuneImagery:
    """What a tune is about, from its title, `O:` region and `R:` kind of song."""
    themes = themes_of(title, genre, collection)
    region = region_of(origin, collection)
    parts = []
    if themes:
        parts.append("A song of " + "; ".join(IMAGERY[t] for t in themes[:4]))
    if region:
        parts.append((", from " if parts else "A song from ") + region)
    return TuneImagery(themes, region, ("".join(parts) + ".") if parts else "")


def _corpus_file(source: str) -> tuple[Path, int] | None:
    """The ABC file of a table source ('essen/lux#12', 'oneills/0811-0899#3') and the tune's number in it."""
    import music21
    try:
        collection, rest = source.split("/", 1)
        stem, number = rest.split("#", 1)
        folder = {"essen": "essenFolksong", "oneills": "oneills1850"}[collection]
        return Path(music21.__file__).parent / "corpus" / folder / f"{stem}.abc", int(number)
    except (ValueError, KeyError):
        return None


@lru_cache(maxsize=64)
def _headers(path: Path) -> tuple[dict[str, str], ...]:
    tunes: list[dict[str, str]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("X:"):
            tunes.append({})
        elif tunes and len(line) > 1 and line[1] == ":" and line[0] in "TOR":
            tunes[-1].setdefault(line[0], line[2:].strip().rstrip("]"))
    return tuple(tunes)


def headers(source: str) -> dict[str, str]:
    """The `T:`, `O:` and `R:` headers of a corpus tune (music21 numbers an opus's tunes from 1, in
    file order); empty when the file is not there."""
    found = _corpus_file(source)
    if found is None or not found[0].exists():
        return {}
    tunes = _headers(found[0])
    return dict(tunes[found[1] - 1]) if 0 < found[1] <= len(tunes) else {}
