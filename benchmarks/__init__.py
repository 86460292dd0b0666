"""llem's benchmarks: scripts grouped by purpose (see README.md). A package only so the scripts can import each other."""
