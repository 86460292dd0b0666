"""The `llem` command line: a thin layer over the library."""
