"""The command line: the entry point, headless training, benchmarks."""
