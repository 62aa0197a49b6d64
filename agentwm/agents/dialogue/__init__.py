"""Dialogue training loops: the Chit-Chat next-turn model and the outcome model of any conversation logs."""
