"""Start screen: patient pseudonym, plan or preset, contraindication checklist."""
