"""Treatment plans: preset resolution, contraindication screening, dose helper and the dry-run."""
