"""Environment adapters: gymnasium, DMC, BabyAI and text games on one protocol each."""
