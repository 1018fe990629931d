"""Hardware targets: each describes a chip as data plus its exact integer arithmetic."""
