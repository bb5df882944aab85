"""Task files the lm-eval bridge ships (templates; copied into a temporary include dir)."""
