"""The procedural renderer's public names; the code lives in models/procedural/."""
from models.procedural.fields import LAYOUTS, SHAPES, Look, look_from_caption, palette_from_va, parse_hex
from models.procedural.motifs import MOTIF_NAMES, choose_motifs, motion_from_text
from models.procedural.renderer import ACCENT_KEYS, SCENE_KEYS, ProceduralRenderer

__all__ = ["ACCENT_KEYS", "LAYOUTS", "MOTIF_NAMES", "SCENE_KEYS", "SHAPES", "Look", "ProceduralRenderer",
           "choose_motifs", "look_from_caption", "motion_from_text", "palette_from_va", "parse_hex"]
