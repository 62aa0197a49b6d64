"""The BabyAI test bed: scripted and LLM agents, the learned model, and their LLM backends."""
