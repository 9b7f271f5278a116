"""Pure models: music features and VA, captions, renderers, image VA, composer. No devices here."""
