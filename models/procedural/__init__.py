"""The procedural layer: smooth fields (fields), the motif library (motifs), beat and onset accents
(accents) and the renderer that puts them together (renderer)."""
from models.procedural.renderer import ProceduralRenderer

__all__ = ["ProceduralRenderer"]
