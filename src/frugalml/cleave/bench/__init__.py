"""cleave's measurements: the papers' claims as ratios, device sweeps and the runtime benchmark."""
