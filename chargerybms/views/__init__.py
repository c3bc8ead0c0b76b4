"""Views: what the daemon derives from the frames as they come (fed every frame, keys in state)."""
