"""Back ends that execute compiled graphs: the integer simulator (intsim) and Lava."""
