"""Composing: pictures -> music, by retrieval over the corpus, self-refinement, a learned model or an LLM."""
