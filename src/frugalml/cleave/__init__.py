"""cleave: plan, simulate and run foundation-model training on many weak edge devices."""
