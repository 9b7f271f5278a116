"""Language models: the OpenAI-compatible HTTP client, the checks on what a model answers, the server probe and the sentence model."""
