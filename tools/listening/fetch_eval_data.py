#!/usr/bin/env python3
"""Build the music valence-arousal evaluation sets in DIR (default: eval-data/listening).

  arousal/  calm and energetic orchestral game music from Debian's `wesnoth-1.16-music` package
            (GPL-2+, fetched with `apt-get download`), labelled by title and in-game role:
            battle/siege/chase tracks +1, love/sanctuary/lament/ambient tracks -1.
  valence/  Bach chorales from music21's bundled corpus rendered with fluidsynth and the TimGM6mb
            General MIDI soundfont; mode from the notation: the key signature's major or relative
            minor tonic that the opening bass note names (+1 major, -1 minor; others skipped).
  pairs/    folk tunes from music21's corpus (Essen collection), each rendered plain, 1.5x faster and
            louder (velocity 50 -> 105); a `pair` column ties each plain version to its variant.
  moods/    22 tracks of the same Debian package labelled for valence by the mood their titles name:
            victory, love, merry minstrels, homecoming, heroes, liberation, sanctuary +1; defeat,
            sadness, a king's death, a fallen city, casualties, suspense, shadows, revenge, a funeral
            canticle -1. The fitted valence head (models/data/valence_head.json) is tuned on it.
  0ad/      13 tracks of Debian's `0ad-data` (CC-BY-SA), tuning material for the fitted valence head
            beside moods/: +1 the game's victory track and titles naming a festival, an idyll, pride,
            sunrise, the Elysian fields; -1 its defeat track (Dried Tears) and titles naming sorrow, an
            epitaph, a burning city, a point of no return, the last stand of 300.
  others/   51 tracks from eight other Debian packages (supertuxkart-data, singularity-music,
            ufoai-music, extremetuxracer-data, naev-data, freeciv-data, hyperrogue-music,
            warzone2100-music), labelled by the words of their titles or the game's folder for them:
            valence +1 for win, victory, party, fair, dance, upbeat, eureka, peace, fanfare, dawn,
            rewards; -1 for lose, lost, sad, fade, tension, threat, dark, sinister, graveyard, hell,
            broken dreams, collapse (30 tracks); arousal +1 for combat, battle, fire fight, urban
            warfare, spunky, -1 for ambient, peace, calm (23 tracks). Held out: the labels were
            written from the titles before any head heard the tracks, and no weight was set on them.
  fresh/    46 tracks from eighteen Debian packages no other set uses (supertux-data, flare-game,
            unknown-horizons, freedroidrpg-data, lordsawar-data, gigalomania-data, kgoldrunner,
            starfighter-data, marsshooter-data, openclonk-data, powermanga-data, freecol, caveexpress-data,
            btanks-data, triplea, asc-music, enigma-data, lincity-ng-data), labelled by the words of their
            file names or the game's use of them: valence +1 for victory, win, level done, Christmas,
            congratulations, sunrise, dance, glory, game won; -1 for defeat, lose, game over, game lost,
            dark, death, fear, cruelty, misanthropy, unrest (24 tracks); arousal +1 for battle, fight, boss,
            sprint, strike; -1 for ambient, ambience, safe room, meditation, contemplations, dream, breeze,
            silence (22 tracks). The second held-out set, labelled the same way before any head heard it.

Needs: apt-get (Debian), dpkg-deb, fluidsynth, timgm6mb-soundfont, music21, mido. About 20 minutes
(0ad/, others/ and fresh/ download about 4 GB of packages, one at a time, and keep about 300 MB; 0ad/
needs up to 5 GB of temporary space while the game's archive is unpacked).
Then: python run.py eval music-va --labels DIR/arousal/labels.csv --audio DIR/arousal (and so on).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
WESNOTH_PACKAGE = "wesnoth-1.16-music"
ENERGETIC = ("battle", "battle-epic", "casualties_of_war", "frantic", "siege_of_laurelmor", "the_city_falls",
             "vengeful", "weight_of_revenge", "heroes_rite", "northerners", "legends_of_the_north",
             "the_dangerous_symphony")
CALM = ("love_theme", "silvan_sanctuary", "wanderer", "elf-land", "nunc_dimittis", "journeys_end", "sad",
        "transience", "the_deep_path", "underground", "knolls", "elvish-theme")
# Valence by the mood the title names (the package's own words, not a listening panel).
POSITIVE = ("victory", "victory2", "love_theme", "traveling_minstrels", "return_to_wesnoth", "heroes_rite",
            "breaking_the_chains", "journeys_end", "revelation", "silvan_sanctuary")
NEGATIVE = ("defeat", "defeat2", "sad", "the_king_is_dead", "the_city_falls", "casualties_of_war", "suspense",
            "into_the_shadows", "weight_of_revenge", "vengeful", "nunc_dimittis", "transience")
RENDER_RATE_HZ = 22050
SETS = ("arousal", "valence", "pairs", "moods", "0ad", "others", "fresh")

ZEROAD_PACKAGE = "0ad-data"
ZEROAD_MUSIC = "audio/music/"
# (file name in the game's public.zip, valence); the game plays You_are_Victorious! on victory and
# Dried_Tears on defeat (gui/common/music.js); the others are labelled by the mood their titles name.
ZEROAD = (("You_are_Victorious!", 1), ("Harvest_Festival", 1), ("Solstice_Festival", 1), ("Mountain_Idyll", 1),
          ("Celtic_Pride", 1), ("Sunrise", 1), ("Elysian_Fields", 1),
          ("Dried_Tears", -1), ("Hill_of_Sorrows", -1), ("Epitaph", -1), ("Alba_Longa_Burns", -1),
          ("Point_of_No_Return", -1), ("Only_300_Stood", -1))

# The held-out set: (id, Debian package, path inside it, valence, arousal, the words the label rests on).
# A path "X.pk3:member" is a member of a zip archive inside the package. None = not labelled on that axis.
_STK = "usr/share/games/supertuxkart/data/music/"
_SING = "usr/share/games/singularity/music/"
_UFO = "usr/share/games/ufoai/base/0music.pk3:music/"
_ETR = "usr/share/games/etr/music/"
_NAEV = "usr/share/naev/dat/snd/music/"
_WZ = "usr/share/games/warzone2100/music/albums/"
_HR = "usr/share/hyperrogue/music/"
OTHERS: tuple[tuple[str, str, str, int | None, int | None, str], ...] = (
    # valence +1
    ("stk_win_theme", "supertuxkart-data", _STK + "win_theme.ogg", 1, None, "title 'Win Theme'"),
    ("stk_race_win_theme", "supertuxkart-data", _STK + "race_win_theme.ogg", 1, None, "title 'Race Win Theme'"),
    ("stk_penguin_party", "supertuxkart-data", _STK + "Penguin_Party.ogg", 1, None, "title 'Penguin Party'"),
    ("stk_the_great_fair", "supertuxkart-data", _STK + "theGreatFair.ogg", 1, None, "title 'The Great Fair'"),
    ("stk_klabauter_dance", "supertuxkart-data", _STK + "klabauter_dance.ogg", 1, None, "title 'Klabauter Dance'"),
    ("singularity_apex_aleph", "singularity-music", _SING + "win/Apex Aleph.ogg", 1, None, "the game's win/ music"),
    ("ufoai_win_game", "ufoai-music", _UFO + "Crystan-WinGame.ogg", 1, None, "title 'WinGame'"),
    ("etr_won_race", "extremetuxracer-data", _ETR + "wonrace1-jt.ogg", 1, None, "title 'wonrace'"),
    ("naev_upbeat", "naev-data", _NAEV + "upbeat.ogg", 1, None, "title 'upbeat'"),
    ("naev_eureka", "naev-data", _NAEV + "eureka.ogg", 1, None, "title 'eureka'"),
    ("naev_peace1", "naev-data", _NAEV + "peace1.ogg", 1, -1, "title 'peace'"),
    ("naev_peace2", "naev-data", _NAEV + "peace2.ogg", 1, -1, "title 'peace'"),
    ("freeciv_dawning_fanfare", "freeciv-data", "usr/share/games/freeciv/stdmusic/"
     "CullamBruce-Lockhart--Dawning_Fanfare.ogg", 1, None, "title 'Dawning Fanfare'"),
    ("wz_new_dawn", "warzone2100-music", _WZ + "legacy_soundtrack/track12.opus", 1, None, "title 'New Dawn'"),
    ("wz_just_rewards", "warzone2100-music", _WZ + "aftermath_soundtrack/track26.opus", 1, None,
     "title 'Just Rewards'"),
    # valence -1
    ("stk_lose_theme", "supertuxkart-data", _STK + "lose_theme.ogg", -1, None, "title 'Lose Theme'"),
    ("singularity_chimes_they_fade", "singularity-music", _SING + "lose/Chimes They Fade.ogg", -1, None,
     "the game's lose/ music"),
    ("singularity_march_thee_to_dis", "singularity-music", _SING + "lose/March Thee to Dis.ogg", -1, None,
     "the game's lose/ music"),
    ("singularity_media_threat", "singularity-music", _SING + "Media Threat.ogg", -1, None, "title 'Media Threat'"),
    ("ufoai_lose_game", "ufoai-music", _UFO + "Crystan-LooseGame.ogg", -1, None, "title 'LooseGame'"),
    ("ufoai_intro_sad", "ufoai-music", _UFO + "Crystan-IntroSad.ogg", -1, None, "title 'IntroSad'"),
    ("etr_lost_race", "extremetuxracer-data", _ETR + "lostrace-ks.ogg", -1, None, "title 'lostrace'"),
    ("naev_tension", "naev-data", _NAEV + "tension.ogg", -1, None, "title 'tension'"),
    ("naev_imminent_threat", "naev-data", _NAEV + "imminent_threat.ogg", -1, None, "title 'imminent threat'"),
    ("naev_dark_city", "naev-data", _NAEV + "dark_city.ogg", -1, None, "title 'dark city'"),
    ("naev_landing_sinister", "naev-data", _NAEV + "landing_sinister.ogg", -1, None, "title 'landing sinister'"),
    ("hyperrogue_graveyard", "hyperrogue-music", _HR + "hr3-graveyard.ogg", -1, None, "title 'graveyard'"),
    ("hyperrogue_hell", "hyperrogue-music", _HR + "hr3-hell.ogg", -1, None, "title 'hell'"),
    ("wz_broken_dreams", "warzone2100-music", _WZ + "legacy_soundtrack/track13.opus", -1, None,
     "title 'Broken Dreams'"),
    ("wz_the_collapse", "warzone2100-music", _WZ + "aftermath_soundtrack/track21.opus", -1, None,
     "title 'The Collapse'"),
    # arousal +1
    ("naev_combat1", "naev-data", _NAEV + "combat1.ogg", None, 1, "title 'combat'"),
    ("naev_combat2", "naev-data", _NAEV + "combat2.ogg", None, 1, "title 'combat'"),
    ("naev_combat3", "naev-data", _NAEV + "combat3.ogg", None, 1, "title 'combat'"),
    ("naev_battlesomething1", "naev-data", _NAEV + "battlesomething1.ogg", None, 1, "title 'battle'"),
    ("naev_battlesomething2", "naev-data", _NAEV + "battlesomething2.ogg", None, 1, "title 'battle'"),
    ("naev_galacticbattle", "naev-data", _NAEV + "galacticbattle.ogg", None, 1, "title 'galactic battle'"),
    ("naev_nebu_battle1", "naev-data", _NAEV + "nebu_battle1.ogg", None, 1, "title 'battle'"),
    ("naev_flf_battle1", "naev-data", _NAEV + "flf_battle1.ogg", None, 1, "title 'battle'"),
    ("ufoai_battlescape01", "ufoai-music", _UFO + "Crystan-Battlescape01.ogg", None, 1, "title 'Battlescape'"),
    ("ufoai_fire_fight", "ufoai-music", _UFO + "MarineFireFight.ogg", None, 1, "title 'FireFight'"),
    ("ufoai_urban_warfare", "ufoai-music", _UFO + "MarineUrbanWarfare.ogg", None, 1, "title 'UrbanWarfare'"),
    ("etr_spunky_race", "extremetuxracer-data", _ETR + "spunkyrace-ks.ogg", None, 1, "title 'spunkyrace'"),
    # arousal -1 (naev_peace1 and naev_peace2 above are calm too)
    ("naev_ambient1", "naev-data", _NAEV + "ambient1.ogg", None, -1, "title 'ambient'"),
    ("naev_ambient2", "naev-data", _NAEV + "ambient2.ogg", None, -1, "title 'ambient'"),
    ("naev_ambient2_5", "naev-data", _NAEV + "ambient2_5.ogg", None, -1, "title 'ambient'"),
    ("naev_ambient3", "naev-data", _NAEV + "ambient3.ogg", None, -1, "title 'ambient'"),
    ("naev_ambient4", "naev-data", _NAEV + "ambient4.ogg", None, -1, "title 'ambient'"),
    ("naev_ambiphonic", "naev-data", _NAEV + "ambiphonic.ogg", None, -1, "title 'ambiphonic'"),
    ("naev_peace4", "naev-data", _NAEV + "peace4.ogg", None, -1, "title 'peace'"),
    ("naev_peace6", "naev-data", _NAEV + "peace6.ogg", None, -1, "title 'peace'"),
    ("etr_calm_race", "extremetuxracer-data", _ETR + "calmrace-ks.ogg", None, -1, "title 'calmrace'"),
)


# The second held-out set, from packages no other set uses; same columns as OTHERS. Labels written from the
# file names (or the game's use of the file) before any head heard the tracks.
_STX = "usr/share/games/supertux2/music/"
_FLARE = "usr/share/games/flare/mods/fantasycore/music/"
_FDRPG = "usr/share/freedroidrpg/data/"
_LAW = "usr/share/games/lordsawar/music/"
_GIGA = "usr/share/gigalomania/music/"
_UH = "usr/share/unknown-horizons/content/audio/"
_KGR = "usr/share/kgoldrunner/themes/default/"
_SF = "usr/share/starfighter/music/"
_MARS = "usr/share/games/marsshooter/audio/music/"
_OC = "usr/share/games/openclonk/Music.ocg/"
FRESH: tuple[tuple[str, str, str, int | None, int | None, str], ...] = (
    # valence +1
    ("lordsawar_victory", "lordsawar-data", _LAW + "victory.ogg", 1, None, "title 'victory'"),
    ("gigalomania_victory", "gigalomania-data", _GIGA + "victory.ogg", 1, None, "title 'victory'"),
    ("uh_scenario_win", "unknown-horizons", _UH + "sounds/events/scenario/win.ogg", 1, None,
     "the game's scenario win event ('win')"),
    ("kgoldrunner_victory", "kgoldrunner", _KGR + "victory.ogg", 1, None, "title 'victory'"),
    ("supertux_leveldone", "supertux-data", _STX + "misc/leveldone.ogg", 1, None, "title 'level done'"),
    ("supertux_christmas_theme", "supertux-data", _STX + "misc/christmas_theme.ogg", 1, None,
     "title 'Christmas theme' (festival)"),
    ("powermanga_congratulations", "powermanga-data",
     "usr/share/games/powermanga/sound/handheld_console/music_congratulations.ogg", 1, None,
     "title 'congratulations'"),
    ("freecol_sunrise", "freecol", "usr/share/games/freecol/default/resources/music/default/sunrise.ogg", 1, None,
     "title 'sunrise'"),
    ("starfighter_last_cyber_dance", "starfighter-data", _SF + "last_cyber_dance.ogg", 1, None,
     "title 'Last Cyber Dance'"),
    ("caveexpress_music_win", "caveexpress-data", "usr/share/games/caveexpress/sounds/music-win.ogg", 1, None,
     "title 'music win'"),
    ("btanks_glory", "btanks-data", "usr/share/games/btanks/data/tunes/glory.ogg", 1, None, "title 'glory'"),
    ("triplea_game_won", "triplea", "usr/share/games/triplea/assets/sounds/preindustrial/game_won/"
     "game_won_01_end_of_1812_overture.mp3", 1, None, "the game's game_won/ music (end of the 1812 Overture)"),
    # valence -1
    ("lordsawar_defeat", "lordsawar-data", _LAW + "defeat.ogg", -1, None, "title 'defeat'"),
    ("gigalomania_defeat", "gigalomania-data", _GIGA + "defeat.ogg", -1, None, "title 'defeat'"),
    ("uh_scenario_lose", "unknown-horizons", _UH + "sounds/events/scenario/lose.ogg", -1, None,
     "the game's scenario lose event ('lose')"),
    ("kgoldrunner_gameover", "kgoldrunner", _KGR + "gameover.ogg", -1, None, "title 'game over'"),
    ("freedroidrpg_game_lost", "freedroidrpg-data", _FDRPG + "base/titles/GameLost.ogg", -1, None,
     "title 'Game Lost'"),
    ("supertux_voc_dark", "supertux-data", _STX + "antarctic/voc-dark.ogg", -1, None, "title 'dark'"),
    ("supertux_darkforestkeep", "supertux-data", _STX + "castle/darkforestkeep.ogg", -1, None,
     "title 'dark forest keep'"),
    ("starfighter_death", "starfighter-data", _SF + "death.ogg", -1, None, "title 'death'"),
    ("mars_fear", "marsshooter-data", _MARS + "03_fear.ogg", -1, None, "title 'fear'"),
    ("mars_wings_of_cruelty", "marsshooter-data", _MARS + "09_wings_of_cruelty.ogg", -1, None,
     "title 'Wings of Cruelty'"),
    ("mars_misanthropia", "marsshooter-data", _MARS + "12_-_Misanthropia.ogg", -1, None,
     "title 'Misanthropia'"),
    ("flare_unrest_theme", "flare-game", _FLARE + "unrest_theme.ogg", -1, None, "title 'unrest'"),
    # arousal +1
    ("lordsawar_battle", "lordsawar-data", _LAW + "battle.ogg", None, 1, "title 'battle'"),
    ("uh_battle", "unknown-horizons", _UH + "music/battle.ogg", None, 1, "title 'battle'"),
    ("uh_seafight", "unknown-horizons", _UH + "music/seafight.ogg", None, 1, "title 'sea fight'"),
    ("supertux_battle_theme", "supertux-data", _STX + "misc/battle_theme.ogg", None, 1, "title 'battle theme'"),
    ("supertux_bossattack", "supertux-data", _STX + "antarctic/bossattack.ogg", None, 1, "title 'boss attack'"),
    ("supertux_forest_sprint", "supertux-data", _STX + "forest/forest-sprint.ogg", None, 1, "title 'sprint'"),
    ("flare_battle_theme", "flare-game", _FLARE + "battle_theme.ogg", None, 1, "title 'battle theme'"),
    ("flare_boss_theme", "flare-game", _FLARE + "boss_theme.ogg", None, 1, "title 'boss theme'"),
    ("freedroidrpg_hyperbattle", "freedroidrpg-data", _FDRPG + "sound/music/Hyperbattle.ogg", None, 1,
     "title 'Hyperbattle'"),
    ("freedroidrpg_techbattle", "freedroidrpg-data", _FDRPG + "sound/music/TechBattle.ogg", None, 1,
     "title 'Tech Battle'"),
    ("asc_time_to_strike", "asc-music", "usr/share/games/asc/music/time_to_strike.mp3", None, 1,
     "title 'Time to Strike'"),
    # arousal -1
    ("flare_wind_ambient", "flare-game", _FLARE + "wind_ambient.ogg", None, -1, "title 'wind ambient'"),
    ("flare_safe_room_theme", "flare-game", _FLARE + "safe_room_theme.ogg", None, -1,
     "title 'safe room theme' (the game's resting place)"),
    ("freedroidrpg_ambience", "freedroidrpg-data", _FDRPG + "sound/music/Ambience.ogg", None, -1,
     "title 'Ambience'"),
    ("enigma_meditation", "enigma-data", "usr/share/games/enigma/music/game/meditation.ogg", None, -1,
     "title 'meditation'"),
    ("lincity_architectural_contemplations", "lincity-ng-data", "usr/share/games/lincity-ng/music/default/"
     "03 - Robert van Herk - Architectural Contemplations.ogg", None, -1, "title 'Architectural Contemplations'"),
    ("uh_nightdream", "unknown-horizons", _UH + "music/nightdream.ogg", None, -1, "title 'night dream'"),
    ("openclonk_lucid_dream", "openclonk-data", _OC + "LucidDream.ogg", None, -1, "title 'Lucid Dream'"),
    ("openclonk_island_dreams", "openclonk-data", _OC + "IslandDreams.ogg", None, -1, "title 'Island Dreams'"),
    ("supertux_tropicalbreeze", "supertux-data", _STX + "tropical/tropicalbreeze.ogg", None, -1,
     "title 'tropical breeze'"),
    ("supertux_arctic_breeze", "supertux-data", _STX + "antarctic/arctic_breeze.ogg", None, -1,
     "title 'arctic breeze'"),
    ("starfighter_sound_and_silence", "starfighter-data", _SF + "sound_and_silence.ogg", None, -1,
     "title 'Sound and Silence'"),
)

def _copy_wesnoth(dest: Path, names: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", WESNOTH_PACKAGE], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        music = next(Path(tmp, "x").rglob("music"))
        for name in names:
            shutil.copy(music / f"{name}.ogg", dest / f"{name}.ogg")
        licence = next(Path(tmp, "x").rglob("copyright"), None)
        if licence:
            shutil.copy(licence, dest / "COPYRIGHT")


def fetch_wesnoth(out: Path) -> None:
    dest = out / "arousal"
    _copy_wesnoth(dest, ENERGETIC + CALM)
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        for name in ENERGETIC:
            w.writerow([name, "", 1])
        for name in CALM:
            w.writerow([name, "", -1])


def fetch_moods(out: Path) -> None:
    dest = out / "moods"
    _copy_wesnoth(dest, POSITIVE + NEGATIVE)
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        for name in POSITIVE:
            w.writerow([name, 1, ""])
        for name in NEGATIVE:
            w.writerow([name, -1, ""])


def copy_0ad(public_zip: Path, dest: Path) -> None:
    """The ZEROAD tracks out of the game's public.zip, and their labels."""
    import zipfile
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(public_zip) as z:
        for name, _ in ZEROAD:
            (dest / f"{name.rstrip('!').lower()}.ogg").write_bytes(z.read(f"{ZEROAD_MUSIC}{name}.ogg"))
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal", "title"])
        for name, valence in ZEROAD:
            w.writerow([name.rstrip("!").lower(), valence, "", name.replace("_", " ")])


def fetch_0ad(out: Path) -> None:
    """Tuning material from `0ad-data` (1.4 GB to download; its music sits inside public.zip)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", ZEROAD_PACKAGE], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        member = "./usr/share/games/0ad/mods/public/public.zip"
        licence = f"./usr/share/doc/{ZEROAD_PACKAGE}/copyright"
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, member, licence], stdin=tar.stdout, check=True)
        tar.wait()
        deb.unlink()
        copy_0ad(Path(tmp) / member, out / "0ad")
        shutil.copy(Path(tmp) / licence, out / "0ad" / "COPYRIGHT")


def fetch_debian_set(dest: Path, table: tuple[tuple[str, str, str, int | None, int | None, str], ...]) -> None:
    """Download each package of `table` once (one at a time), copy its listed members and its copyright file
    (COPYRIGHT.<package>) into dest, and write labels.csv: song_id, valence, arousal, package, evidence."""
    import zipfile
    dest.mkdir(parents=True, exist_ok=True)
    packages = sorted({row[1] for row in table})
    with tempfile.TemporaryDirectory() as tmp:
        for package in packages:
            pdir = Path(tmp) / package
            pdir.mkdir()
            subprocess.run(["apt-get", "download", package], cwd=pdir, check=True)
            deb = next(pdir.glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(pdir / "x")], check=True)
            deb.unlink()  # the largest is over 600 MB; keep one unpacked package at a time
            licence = pdir / "x" / "usr/share/doc" / package / "copyright"
            if licence.is_file():
                shutil.copy(licence, dest / f"COPYRIGHT.{package}")
            for ident, pkg, member, _, _, _ in table:
                if pkg != package:
                    continue
                suffix = Path(member).suffix
                if ".pk3:" in member:
                    archive, inner = member.split(":", 1)
                    with zipfile.ZipFile(pdir / "x" / archive) as z, (dest / f"{ident}{suffix}").open("wb") as f:
                        f.write(z.read(inner))
                else:
                    shutil.copy(pdir / "x" / member, dest / f"{ident}{suffix}")
            shutil.rmtree(pdir)
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal", "package", "evidence"])
        for ident, package, _, valence, arousal, evidence in table:
            w.writerow([ident, "" if valence is None else valence, "" if arousal is None else arousal, package,
                        evidence])


def fetch_others(out: Path) -> None:
    """The first held-out set: tracks of several Debian packages, labelled by their titles (OTHERS)."""
    fetch_debian_set(out / "others", OTHERS)


def fetch_fresh(out: Path) -> None:
    """The second held-out set: tracks of Debian packages not used by any other set (FRESH)."""
    fetch_debian_set(out / "fresh", FRESH)


def render(midi_path: Path, wav_path: Path) -> None:
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(RENDER_RATE_HZ), "-g", "0.6", "-F", str(wav_path),
                    str(SOUNDFONT), str(midi_path)], check=True, stdout=subprocess.DEVNULL)


def retime(src: Path, dst: Path, qpm: float, velocity: int | None) -> None:
    """Rewrite a MIDI file with one tempo (quarter notes per minute) and, optionally, one velocity."""
    import mido
    mid = mido.MidiFile(src)
    for track in mid.tracks:
        for msg in list(track):
            if msg.type == "set_tempo":
                msg.tempo = mido.bpm2tempo(qpm)
            if velocity is not None and msg.type == "note_on" and msg.velocity > 0:
                msg.velocity = velocity
    if not any(m.type == "set_tempo" for m in mid.tracks[0]):
        mid.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0))
    mid.save(dst)


def notated_mode(score) -> str | None:
    """'major'/'minor' from the key signature and the opening bass note; None when they disagree."""
    from music21 import key as m21key
    sigs = score.recurse().getElementsByClass(m21key.KeySignature)
    if not sigs:
        return None
    ks = sigs[0]
    notes = list(score.parts[-1].recurse().notes)
    if not notes:
        return None
    first = notes[0]
    bass = min(first.pitches, key=lambda p: p.ps).pitchClass
    if bass == ks.asKey("major").tonic.pitchClass:
        return "major"
    if bass == ks.asKey("minor").tonic.pitchClass:
        return "minor"
    return None


def fetch_chorales(out: Path, per_mode: int) -> None:
    from music21 import corpus
    dest = out / "valence"
    dest.mkdir(parents=True, exist_ok=True)
    counts = {"major": 0, "minor": 0}
    rows = []
    for path in sorted(corpus.getComposer("bach")):
        if min(counts.values()) >= per_mode:
            break
        try:
            score = corpus.parse(path)
            mode = notated_mode(score)
        except Exception:
            continue
        if mode is None or counts[mode] >= per_mode or len(score.parts) < 4:
            continue
        name = Path(str(path)).stem.replace(".", "_")
        with tempfile.TemporaryDirectory() as tmp:
            mid = Path(tmp) / "a.mid"
            score.write("midi", fp=str(mid))
            fixed = Path(tmp) / "b.mid"
            retime(mid, fixed, 80.0, 80)
            render(fixed, dest / f"{name}.wav")
        counts[mode] += 1
        rows.append([name, 1 if mode == "major" else -1, ""])
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        w.writerows(rows)


def fetch_pairs(out: Path, n: int) -> None:
    from music21 import corpus
    dest = out / "pairs"
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    paths = [p for p in corpus.getPaths() if "essenFolksong" in str(p)]
    done = 0
    for path in sorted(paths)[:10]:
        try:
            opus = corpus.parse(path)
        except Exception:
            continue
        scores = list(getattr(opus, "scores", [opus]))
        for k, score in enumerate(scores[:: max(1, len(scores) // 8)]):
            if done >= n:
                break
            if score.highestTime < 24:  # too short to hear a tempo
                continue
            name = f"{Path(str(path)).stem}_{k}"
            with tempfile.TemporaryDirectory() as tmp:
                mid = Path(tmp) / "a.mid"
                try:
                    score.write("midi", fp=str(mid))
                except Exception:  # a few corpus entries do not export; skip them
                    continue
                for suffix, qpm, vel in (("plain", 80.0, 50), ("fast", 120.0, 50), ("loud", 80.0, 105)):
                    fixed = Path(tmp) / f"{suffix}.mid"
                    retime(mid, fixed, qpm, vel)
                    render(fixed, dest / f"{name}_{suffix}.wav")
            rows += [[f"{name}_plain", "", -1, f"{name}-tempo"], [f"{name}_fast", "", 1, f"{name}-tempo"],
                     [f"{name}_plain", "", -1, f"{name}-loud"], [f"{name}_loud", "", 1, f"{name}-loud"]]
            done += 1
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal", "pair"])
        w.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", type=Path, default=Path("eval-data/listening"))
    parser.add_argument("--chorales", type=int, default=30, help="chorales per mode")
    parser.add_argument("--pairs", type=int, default=12, help="folk tunes rendered plain/faster/louder")
    parser.add_argument("--only", choices=SETS, action="append")
    args = parser.parse_args()
    for tool in ("fluidsynth",):
        if shutil.which(tool) is None or not SOUNDFONT.is_file():
            print("error: needs fluidsynth and the TimGM6mb soundfont: apt-get install --no-install-recommends "
                  "fluidsynth timgm6mb-soundfont", file=sys.stderr)
            return 2
    only = set(args.only or SETS)
    if "arousal" in only:
        fetch_wesnoth(args.dir)
    if "valence" in only:
        fetch_chorales(args.dir, args.chorales)
    if "pairs" in only:
        fetch_pairs(args.dir, args.pairs)
    if "moods" in only:
        fetch_moods(args.dir)
    if "0ad" in only:
        fetch_0ad(args.dir)
    if "others" in only:
        fetch_others(args.dir)
    if "fresh" in only:
        fetch_fresh(args.dir)
    print(f"evaluation sets written under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
