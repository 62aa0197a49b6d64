"""Environment adapters: gymnasium (gym.py), DeepMind Control (dmc.py) and BabyAI (babyai.py)."""
