"""TextWorld: game generation, experience collection, world-model training and planning agents."""
