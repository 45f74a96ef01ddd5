"""A synthetic city that writes real signaling captures plus the ground truth of what happened."""
