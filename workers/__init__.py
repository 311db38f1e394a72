"""Process entrypoints and the composition root: worker profiles, the local stack."""
