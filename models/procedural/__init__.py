"""The procedural layer: smooth fields (fields), the motif library (motifs), beat and onset accents
(accents), a scene's settings (scene), the look's blend (looks), the motif set on stage (cast), the
colour grade (grade) and the renderer that puts them together (renderer)."""
