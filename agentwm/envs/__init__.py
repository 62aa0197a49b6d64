"""Environment and data adapters: gymnasium, DMC, BabyAI, text environments, conversation logs."""
