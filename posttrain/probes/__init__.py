"""Value probe: prompt sets (data), the forced-choice scorer, and the per-checkpoint entry point."""
