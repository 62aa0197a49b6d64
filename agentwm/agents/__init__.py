"""Learning agents and the loops that drive them: env adapters, model-predictive control, Dreamer."""
