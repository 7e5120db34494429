"""Video input pipeline: readers, segment sampling, clip transforms and the Dassl dataset wrapper."""
