"""Pure functions of tables: intervals, latent language, decisions."""
