"""GPU validation: does llem measure right on a GPU (see README.md)."""
