"""Environment adapters: gymnasium (gym.py), DeepMind Control (dmc.py), BabyAI (babyai.py), text games
(text.py: the protocol; textworld.py: the TextWorld adapter) and conversation logs (conversations.py)."""
