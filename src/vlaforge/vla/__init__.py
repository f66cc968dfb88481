"""VLA policy bundles: everything inference needs, in one folder."""
